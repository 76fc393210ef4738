"""Which gateway processes are running: each registers itself in the database at start, says
it is alive every few seconds and leaves at a clean stop. Commands that would change
deliveries behind a gateway's back (``gateway bus redrive``) look here and refuse."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.service import store
from gateway.service.store import ProcessRecord

HEARTBEAT_SECONDS = 10.0
ALIVE_SECONDS = 30.0  # a process not seen for this long is taken for dead


class Presence:
    """This process's entry among the running gateways."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        now = datetime.now(UTC)
        host = socket.gethostname()[:200]
        self.record = ProcessRecord(
            f"{os.getpid()}-{secrets.token_hex(8)}", host, os.getpid(), now, now
        )

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await store.process_started(conn, self.record)

    async def beat(self) -> None:
        async with self.engine.begin() as conn:
            await store.process_seen(conn, self.record.process_id, datetime.now(UTC))

    async def stop(self) -> None:
        before = datetime.now(UTC) - timedelta(seconds=ALIVE_SECONDS)
        async with self.engine.begin() as conn:
            await store.process_stopped(conn, self.record.process_id, before)


async def running_gateways(engine: AsyncEngine) -> list[ProcessRecord]:
    """The gateway processes seen alive within ALIVE_SECONDS."""
    since = datetime.now(UTC) - timedelta(seconds=ALIVE_SECONDS)
    async with engine.connect() as conn:
        return await store.live_processes(conn, since)
