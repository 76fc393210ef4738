"""The pure core imports no I/O library (STYLE.md: a pure core, I/O at the edge)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).parents[2] / "gateway"
# Pure packages and modules of the core (the ledger and the bus check their own pure parts).
PURE = ["envelope", "trust", "workflow.py"]
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
