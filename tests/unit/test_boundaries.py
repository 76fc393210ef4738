"""The pure core imports no I/O library (a pure core, I/O at the edge), and what an auditor or
a bus client imports loads only what it needs, checked in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

GATEWAY = Path(__file__).parents[2] / "gateway"
# Pure packages and modules of the core (the ledger and the bus check their own pure parts).
PURE = ["envelope", "trust", "evidence", "workflow.py"]
FORBIDDEN = {
    "aiohttp",
    "aio_pika",
    "aiormq",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "click",
    "socket",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_package_imports_no_io_library(package: str) -> None:
    target = GATEWAY / package
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert files
    for path in files:
        bad = imported_modules(path) & FORBIDDEN
        assert not bad, f"{path.relative_to(GATEWAY)} imports {sorted(bad)}"


DATABASE_AND_HTTP = {"sqlalchemy", "aiosqlite", "asyncpg", "aiohttp", "aio_pika", "aiormq"}
# What each module may not load, even through its package's __init__.
LEAN = {
    "gateway.ledger.merkle": DATABASE_AND_HTTP,
    "gateway.ledger.checkpoint": DATABASE_AND_HTTP,
    "gateway.ledger.receipt": DATABASE_AND_HTTP,  # the auditor's offline check
    "gateway.ledger": DATABASE_AND_HTTP,  # its storage loads on first use
    "gateway.bus.policy": DATABASE_AND_HTTP,
    "gateway.bus": {"aio_pika", "aiormq", "aiosqlite", "aiohttp"},  # the buses on first use
    "gateway.envelope": DATABASE_AND_HTTP,
    "gateway.evidence.bundle": DATABASE_AND_HTTP,  # verify-bundle: the file and the keys
}


@pytest.mark.parametrize("module", sorted(LEAN))
def test_a_module_loads_only_what_it_needs(module: str) -> None:
    code = (
        "import importlib, json, sys; "
        f"importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not loaded & LEAN[module], f"{module} loads {sorted(loaded & LEAN[module])}"


def test_the_lazy_names_are_still_there() -> None:
    import gateway.bus
    import gateway.ledger

    assert gateway.ledger.SqlLedger.__name__ == "SqlLedger"
    assert gateway.bus.AmqpBus.__name__ == "AmqpBus" and gateway.bus.LocalBus.__name__ == "LocalBus"
    with pytest.raises(AttributeError):
        gateway.ledger.Nothing  # noqa: B018
