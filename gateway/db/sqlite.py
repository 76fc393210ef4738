"""SQLite statements in one trip to the connection's thread.

aiosqlite runs each call on its connection's own thread, and SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch the rows, close the cursor): four hand-offs
between the event loop and that thread, each costing more than the statement itself (an index
lookup takes microseconds; a hand-off, tens of them). :class:`OneTripConnection` is aiosqlite's
connection whose cursors run the whole statement (execute, fetch every row, read the row count
and the last row id, close) in one call on that thread, and whose commit and rollback make no
trip at all when no transaction is open (the pool rolls back every connection it takes back).

Inside a transaction that holds the database's write lock (it began with ``BEGIN IMMEDIATE``:
the writer's batches), statements make no trip at all: they run on the calling thread. They
can no longer wait for a lock, and an indexed read or write takes a few tens of microseconds,
less than the hand-off, which on a busy event loop also waits for the interpreter lock. The
commit, which waits for the disk, still runs on the connection's thread.

Every statement's rows are fetched at once, as SQLAlchemy's adapter does already for every
buffered result; the gateway uses no server-side cursors on SQLite.

This leans on three attributes aiosqlite keeps private (``_execute``, ``_conn`` and
``_thread``), as SQLAlchemy's own adapter does (``_tx``, ``_conn``); pyproject.toml holds
aiosqlite to the minor release this was written against, and tests/unit/test_db_sqlite.py
checks the contract.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite

Description = tuple[tuple[Any, ...], ...] | None
Outcome = tuple[list[Any], Description, int, int | None]


class OneTripCursor:
    """The part of aiosqlite's cursor SQLAlchemy uses, with each statement one trip."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    async def execute(self, sql: str, parameters: Any = ()) -> OneTripCursor:
        await self._run(lambda cursor: cursor.execute(sql, parameters))
        if sql == "BEGIN IMMEDIATE":
            self._connection.write_locked = True
        return self

    async def executemany(self, sql: str, parameters: Any) -> OneTripCursor:
        return await self._run(lambda cursor: cursor.executemany(sql, parameters))

    async def _run(self, statement: Callable[[sqlite3.Cursor], object]) -> OneTripCursor:
        outcome = await self._connection.statement(statement)
        self._rows, self.description, self.rowcount, self.lastrowid = outcome
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


def _whole(connection: OneTripConnection, statement: Callable[[sqlite3.Cursor], object]) -> Outcome:
    """On the connection's thread: the statement, its rows and its counts, cursor closed."""
    cursor = connection._conn.cursor()
    try:
        statement(cursor)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection with one trip per statement and none for an idle transaction."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self.write_locked = False  # in a transaction begun with BEGIN IMMEDIATE
        # As SQLAlchemy does for aiosqlite's own connections: a connection the program never
        # closed must not keep it from exiting.
        self._thread.daemon = True

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def statement(self, statement: Callable[[sqlite3.Cursor], object]) -> Outcome:
        """Run ``statement`` on a cursor of its own, in one trip to the thread (none while the
        transaction holds the write lock)."""
        if self.write_locked and self._conn.in_transaction:
            return _whole(self, statement)
        outcome: Outcome = await self._execute(_whole, self, statement)  # type: ignore[no-untyped-call]
        return outcome

    async def commit(self) -> None:
        self.write_locked = False
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        self.write_locked = False
        if self._conn.in_transaction:
            await super().rollback()


def connect(database: str, *args: Any, **kwargs: Any) -> OneTripConnection:
    """Like ``aiosqlite.connect``, with the arguments SQLAlchemy's dialect computed."""
    # Made on the connection's thread, used on the event loop's too (write-locked statements,
    # one at a time: each is awaited before the next is sent).
    kwargs["check_same_thread"] = False
    return OneTripConnection(lambda: sqlite3.connect(database, *args, **kwargs))
