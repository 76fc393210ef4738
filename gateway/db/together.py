"""Reads by key made together: the keys that requests ask for at the same moment are read in
one statement on one pooled connection, instead of a connection and a statement each.

A caller asks for its key and waits. The first key asked for starts a read on the next turn of
the event loop, so the keys asked for in the same turn share it; the keys asked for while a
read is in progress share the next one. On a busy gateway a fetch of a copy then costs a
share of a checkout and of a statement, most of what such a read costs through SQLAlchemy;
on an idle one it is read alone, one turn of the loop later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MAX_KEYS = 256  # keys in one statement

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadTogether(Generic[K, V]):
    """``get(key)``: what ``read(conn, keys)`` finds for the key (None when it finds nothing),
    read together with the keys other callers ask for at the same time. A failed read fails
    each of its callers with its error; the callers after it are read again."""

    def __init__(
        self,
        engine: AsyncEngine,
        read: Callable[[AsyncConnection, Sequence[K]], Awaitable[Mapping[K, V]]],
    ) -> None:
        self._engine = engine
        self._read = read
        self._asked: dict[K, list[asyncio.Future[V | None]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        found: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(key, []).append(found)
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_all(), name="gateway-read-together")
        return await found

    async def _read_all(self) -> None:
        waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        try:
            while self._asked:
                keys = list(self._asked)[:MAX_KEYS]
                waiting = {key: self._asked.pop(key) for key in keys}
                try:
                    async with self._engine.connect() as conn:
                        rows = await self._read(conn, keys)
                except Exception as e:
                    for future in _pending(waiting):
                        future.set_exception(e)
                else:
                    for key, futures in waiting.items():
                        for future in futures:
                            if not future.done():  # its caller may have gone
                                future.set_result(rows.get(key))
                waiting = {}
        finally:
            self._reading = None
            # stopped (the gateway is stopping): no caller waits for a read that will not come
            for future in [*_pending(waiting), *_pending(self._asked)]:
                future.cancel()
            self._asked.clear()


def _pending(
    asked: Mapping[K, list[asyncio.Future[V | None]]],
) -> Iterator[asyncio.Future[V | None]]:
    """The futures whose callers still wait."""
    return (future for futures in asked.values() for future in futures if not future.done())
