"""The ledger's hashing, checkpoints, entries, receipts and audit are pure: no I/O library and
none of the ledger's storage modules (a receipt verifies with nothing but the file and a key)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LEDGER = Path(__file__).parents[2] / "gateway" / "ledger"
PURE = ["merkle", "checkpoint", "entry", "receipt", "audit"]
FORBIDDEN = {"aiohttp", "aio_pika", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "click",
             "socket", "asyncio"}  # fmt: skip
STORAGE = {"gateway.db.engine", "gateway.ledger.models", "gateway.ledger.store",
           "gateway.db.migrate", "gateway.ledger.query", "gateway.ledger.keys"}  # fmt: skip


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_ledger_module_does_no_io(module: str) -> None:
    found = imports(LEDGER / f"{module}.py")
    assert not {name.split(".")[0] for name in found} & FORBIDDEN
    assert not found & STORAGE
