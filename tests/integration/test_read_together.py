"""Reads by key made together (gateway.db.together), on SQLite and PostgreSQL: keys asked for at
the same moment share one statement, keys asked for during a read share the next, a failed
read fails only its own callers, and a caller that leaves does not disturb the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import bindparam, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.engine import create_engine, reader
from gateway.db.together import ReadTogether


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


class Squares:
    """A read that asks the database for each key's square (keys below 100 exist), and
    remembers the keys of each statement; ``hold`` keeps a read from answering until set, and
    the next ``failures`` reads fail in the database."""

    def __init__(self) -> None:
        self.statements: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.failures = 0

    async def __call__(self, conn: AsyncConnection, keys: Sequence[int]) -> dict[int, int]:
        self.statements.append(sorted(keys))
        await self.hold.wait()
        if self.failures:
            self.failures -= 1
            await conn.execute(select(literal_column("no_such_column")))
        parts = [
            select(bindparam(f"k{i}", key).label("k"), bindparam(f"s{i}", key * key).label("s"))
            for i, key in enumerate(keys)
        ]
        rows = await conn.execute(union_all(*parts))
        return {k: s for k, s in rows if k < 100}


async def test_keys_asked_at_one_moment_share_one_statement(engine: AsyncEngine) -> None:
    squares = Squares()
    together = ReadTogether(reader(engine), squares)
    found = await asyncio.gather(*(together.get(k) for k in (3, 4, 3, 120)))
    assert found == [9, 16, 9, None]  # each its own answer; a key found nowhere is None
    assert squares.statements == [[3, 4, 120]]
    assert await together.get(5) == 25  # on its own, later: a statement of its own
    assert squares.statements == [[3, 4, 120], [5]]


async def test_keys_asked_during_a_read_share_the_next(engine: AsyncEngine) -> None:
    squares = Squares()
    together = ReadTogether(reader(engine), squares)
    squares.hold.clear()
    first = asyncio.create_task(together.get(1))
    while not squares.statements:
        await asyncio.sleep(0)
    later = [asyncio.create_task(together.get(k)) for k in (2, 7)]
    await asyncio.sleep(0.01)
    squares.hold.set()
    assert [await first, *[await t for t in later]] == [1, 4, 49]
    assert squares.statements == [[1], [2, 7]]


async def test_a_failed_read_fails_its_callers_only(engine: AsyncEngine) -> None:
    squares = Squares()
    together = ReadTogether(reader(engine), squares)
    squares.hold.clear()
    squares.failures = 1
    failing = [asyncio.create_task(together.get(k)) for k in (1, 2)]
    while not squares.statements:
        await asyncio.sleep(0)
    after = asyncio.create_task(together.get(3))  # waits for the next read
    await asyncio.sleep(0)
    squares.hold.set()
    for task in failing:
        with pytest.raises(Exception, match="no_such_column"):
            await task
    assert await after == 9
    assert squares.statements == [[1, 2], [3]]


async def test_a_caller_that_leaves_does_not_disturb_the_others(engine: AsyncEngine) -> None:
    squares = Squares()
    together = ReadTogether(reader(engine), squares)
    squares.hold.clear()
    leaving = asyncio.create_task(together.get(6))
    staying = asyncio.create_task(together.get(8))
    while not squares.statements:
        await asyncio.sleep(0)
    leaving.cancel()  # its request's client hung up
    squares.hold.set()
    assert await staying == 64
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert await together.get(9) == 81  # and the next read happens as before
