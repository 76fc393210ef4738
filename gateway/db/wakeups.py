"""Wake-ups: requests that wait for something to change (a long-polling inbox) are woken when a
commit changes it, in every process of the gateway.

A waiter watches a topic (a name such as ``inbox/000.00.05.H07``). Once a transaction that
changed what a topic is about has committed, :meth:`Wakeups.changed` wakes the waiters of this
process at once and, on PostgreSQL, tells the other processes with a ``NOTIFY`` (each process
keeps one connection listening; the notifications of a busy moment go together, one statement
at a time, outside any transaction of the write path). On SQLite there is no such signal
between processes: waiters look again every :data:`SQLITE_RECHECK_SECONDS`, so that a change
made by another worker is seen within that time.

A wake-up says only "look again": a waiter reads what it waits for after each wake-up, and a
spurious one costs a read. Nothing depends on a notification arriving: a lost one (a process
that stopped between its commit and its notification, a listening connection that dropped)
delays a waiter until its next look, at most RECHECK_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "gateway_wake"
PAYLOAD_BYTES = 7000  # PostgreSQL refuses a notification's payload of 8,000 bytes or more
RECHECK_SECONDS = 5.0  # a waiter looks again this often, woken or not (SQLite: 1 s)
SQLITE_RECHECK_SECONDS = 1.0
RECONNECT_SECONDS = 2.0

# One notification per chunk of topics.
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', chunk) FROM unnest(CAST(:chunks AS text[])) chunk")


def chunks(sender: str, topics: Iterable[str], limit: int = PAYLOAD_BYTES) -> list[str]:
    """``topics`` as payloads ``"<sender> <topic> <topic>…"`` of at most ``limit`` bytes."""
    payloads: list[str] = []
    current = sender
    for topic in sorted(topics):
        if len(current.encode()) + 1 + len(topic.encode()) > limit and current != sender:
            payloads.append(current)
            current = sender
        current += " " + topic
    if current != sender:
        payloads.append(current)
    return payloads


class Watch:
    """One waiter's registration on a topic (see :meth:`Wakeups.watch`)."""

    def __init__(self) -> None:
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, seconds: float) -> bool:
        """Until woken (since the last wait) or ``seconds`` have passed: whether woken."""
        try:
            async with asyncio.timeout(seconds):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class Wakeups:
    """The waiters of this process, by topic, and the listening connection that brings the
    other processes' announcements (PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")  # one trip
        self.postgres = engine.dialect.name == "postgresql"
        self.recheck = RECHECK_SECONDS if self.postgres else SQLITE_RECHECK_SECONDS
        self.closed = False
        self._sender = f"{os.getpid()}.{id(self):x}"  # to skip our own notifications
        self._watches: dict[str, set[Watch]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._unsent: set[str] = set()
        self._sender_task: asyncio.Task[None] | None = None
        self._failing = False  # the listening connection cannot be opened

    @contextlib.contextmanager
    def watch(self, topic: str) -> Iterator[Watch]:
        """Watch ``topic`` while inside: register before reading what is waited for, so that
        a change committed between the read and the wait still wakes it."""
        watch = Watch()
        if self.closed:
            watch.wake()
        self._watches.setdefault(topic, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watches.get(topic)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[topic]

    def changed(self, topics: Collection[str]) -> None:
        """After the commit that changed ``topics``: wake this process's waiters on them, and
        tell the other processes (PostgreSQL)."""
        self.wake(topics)
        if self.postgres and topics and not self.closed:
            self._unsent.update(topics)
            if self._sender_task is None or self._sender_task.done():
                self._sender_task = asyncio.create_task(self._send(), name="gateway-notify")

    def wake(self, topics: Iterable[str]) -> None:
        """Wake this process's waiters on ``topics``."""
        for topic in topics:
            for watch in self._watches.get(topic, ()):
                watch.wake()

    def wake_all(self) -> None:
        for watchers in self._watches.values():
            for watch in watchers:
                watch.wake()

    async def start(self) -> None:
        """Listen for the other processes' announcements (PostgreSQL)."""
        if self.postgres and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="gateway-wakeups")

    def close(self) -> None:
        """Stopping: every waiter is answered now, and later ones at once."""
        self.closed = True
        self.wake_all()
        for task in (self._listener, self._sender_task):
            if task is not None:
                task.cancel()

    async def _send(self) -> None:
        while self._unsent:
            topics, self._unsent = self._unsent, set()
            try:
                async with self._autocommit.connect() as conn:
                    await conn.execute(_NOTIFY, {"chunks": chunks(self._sender, topics)})
            except Exception:
                log.warning(
                    "could not tell the other processes of a change; their waiters look "
                    "again within %g s",
                    self.recheck,
                    exc_info=True,
                )

    def _heard(self, payload: str) -> None:
        sender, _, topics = payload.partition(" ")
        if sender != self._sender:
            self.wake(topics.split())

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
                log.warning("the connection listening for wake-ups was lost")
            except Exception as e:
                if not self._failing:  # said once an outage, not every RECONNECT_SECONDS
                    log.warning(
                        "cannot listen for wake-ups (%s: %s); waiters look again every %g s "
                        "until it can",
                        type(e).__name__,
                        e,
                        self.recheck,
                    )
                self._failing = True
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        """Listen on a connection of the pool until it is lost; it never goes back."""
        lost = asyncio.get_running_loop().create_future()

        def on_lost(_connection: object) -> None:
            if not lost.done():
                lost.set_result(None)

        def on_notification(_c: object, _pid: int, _channel: str, payload: str) -> None:
            self._heard(payload)

        async with self.engine.connect() as conn:
            try:
                raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
                raw.add_termination_listener(on_lost)
                await raw.add_listener(CHANNEL, on_notification)
                if self._failing:
                    log.info("listening for wake-ups again")
                    self._failing = False
                self.wake_all()  # what changed while no one listened is looked at again
                await lost
            finally:
                await conn.invalidate()
