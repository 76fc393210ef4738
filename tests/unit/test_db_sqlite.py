"""The SQLite connection behind the gateway's engine: each statement one trip to the
connection's thread, with the rows, counts and errors SQLAlchemy expects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import sqlite
from gateway.db.engine import SQLITE_MEMORY, create_engine, reader, write_transaction

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with write_transaction(engine) as conn:
        await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each call made on a connection's thread."""
    made: list[str] = []
    original = sqlite.OneTripConnection._execute

    async def counted(self: sqlite.OneTripConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(sqlite.OneTripConnection, "_execute", counted)
    return made


async def test_the_engine_connects_through_the_one_trip_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite.OneTripConnection)


async def test_a_select_is_one_trip_and_an_idle_rollback_none(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')"))
    trips.clear()
    async with reader(engine).connect() as conn:
        rows = (await conn.execute(sa.text("SELECT id, v FROM t ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, "c")]
    # One statement, one trip; returning the connection to the pool rolls back nothing.
    assert trips == ["_whole"]


async def test_a_write_transaction_runs_its_statements_without_trips(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        rows = (await conn.execute(sa.text("SELECT v FROM t"))).all()
        assert [tuple(row) for row in rows] == [("a",)]
    # BEGIN IMMEDIATE (which may wait for the lock) and the commit (which waits for the disk)
    # go to the connection's thread; the statements between them run where they are called.
    assert trips == ["_whole", "commit"]
    trips.clear()
    async with engine.connect() as conn:  # a plain transaction holds no write lock
        await conn.execute(sa.text("SELECT v FROM t"))
        await conn.commit()
    assert trips == ["_whole", "_whole", "commit"]  # BEGIN, the select, the commit


async def test_counts_and_row_ids_come_back_with_the_statement(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        inserted = await conn.execute(sa.text("INSERT INTO t (v) VALUES ('x')"))
        assert inserted.lastrowid == 1
        many = await conn.execute(
            sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": "y"}, {"v": "z"}]
        )
        assert many.rowcount == 2
        updated = await conn.execute(sa.text("UPDATE t SET v = v || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        result = await conn.execute(sa.text("SELECT v FROM t ORDER BY id"))
        assert result.fetchone() == ("x",)
        assert result.fetchmany(5) == [("y!",), ("z!",)]


async def test_a_failing_statement_raises_and_the_transaction_rolls_back(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(sa_exc.IntegrityError):
        async with write_transaction(engine) as conn:
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('same')"))
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('same')"))
    async with reader(engine).connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_committed_transaction_is_seen_by_another_connection(
    engine: AsyncEngine,
) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(sa.text("INSERT INTO t (v) VALUES ('kept')"))
    other = create_engine(engine.url)
    try:
        async with reader(other).connect() as conn:
            assert (await conn.execute(sa.text("SELECT v FROM t"))).scalar_one() == "kept"
    finally:
        await other.dispose()


async def test_sqlite_memory_is_bounded_for_the_whole_process(engine: AsyncEngine) -> None:
    async with reader(engine).connect() as conn:
        limit = (await conn.exec_driver_sql("PRAGMA soft_heap_limit")).scalar_one()
        cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    assert limit == SQLITE_MEMORY
    assert cache == -32768  # each connection's own cache, in KiB
