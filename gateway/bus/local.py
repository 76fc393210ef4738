"""``LocalBus``: the embedded bus, durable in one SQLite file (WAL, fsync on publish), with the
same semantics as ``AmqpBus``. A publish returns after its transaction committed; a delivery
handed to a consumer is leased, and the lease (renewed while the handler runs) runs out if the
process dies, so an unacknowledged delivery comes back. Several processes may share the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.bus import codec, flow
from gateway.bus.claims import ClaimStore
from gateway.bus.model import (
    DeadLetter,
    Delivery,
    Handler,
    Observer,
    Outcome,
    UnitCounters,
)
from gateway.bus.naming import check_unit_code
from gateway.bus.policy import RetryPolicy
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_units (code TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS bus_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order on the unit's queue
    unit TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    envelope TEXT NOT NULL,                  -- the message headers, as AmqpBus carries them
    body BLOB NOT NULL,                      -- empty when the body is claim-checked
    state TEXT NOT NULL,                     -- ready | leased | dead
    available_at REAL NOT NULL,              -- not handed out before (retry delay)
    lease_owner TEXT,
    lease_until REAL,
    handouts INTEGER NOT NULL DEFAULT 0,     -- handed out for this attempt (redelivered if > 1)
    reason TEXT,
    dead_at REAL,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS bus_messages_unit ON bus_messages (unit, state, seq);
CREATE INDEX IF NOT EXISTS bus_messages_due ON bus_messages (state, available_at);
"""

IDLE_RECHECK = 30.0  # seconds an idle consumer waits before looking again unwoken

_DUE = "((state = 'ready' AND available_at <= :now) OR (state = 'leased' AND lease_until < :now))"


class LocalBus:
    def __init__(
        self,
        path: Path,
        *,
        claims: ClaimStore,
        policy: RetryPolicy,
        claim_check_bytes: int = 1024 * 1024,
        prefetch: int = 16,
        lease: float = 60.0,
        poll_interval: float = 0.2,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.where = f"the local bus {path}"
        self.claims = claims
        self.policy = policy
        self.claim_check_bytes = claim_check_bytes
        self.prefetch = prefetch
        self.lease = lease
        self.poll_interval = poll_interval
        self.observer = observer
        self.clock = clock
        self._owner = uuid.uuid4().hex
        self._db: aiosqlite.Connection | None = None
        self._durable = True  # the connection's synchronous setting: FULL or NORMAL
        self._lock = asyncio.Lock()
        self._consumers: dict[int, _LocalConsumer] = {}
        self._wakeups: dict[str, set[asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        self._durable = True
        await db.execute("PRAGMA busy_timeout=10000")
        await db.executescript(_SCHEMA)
        self._db = db
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name="localbus-poll"),
            asyncio.create_task(self._renew_loop(), name="localbus-leases"),
        ]

    async def close(self, grace: float = 10.0) -> None:
        for consumer in list(self._consumers.values()):
            await consumer.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._db is not None:
            # Deliveries of this process that were never acknowledged go back at once.
            with contextlib.suppress(Exception):
                async with self._tx() as db:
                    await db.execute(
                        "UPDATE bus_messages SET state = 'ready', lease_owner = NULL "
                        "WHERE state = 'leased' AND lease_owner = ?",
                        (self._owner,),
                    )
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> LocalBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _tx(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction. ``durable`` ones (publish, redrive) are fsynced before they
        return: that is the bus's confirm. The others (leases, acknowledgements, retry and
        dead-letter moves) are atomic too and survive a process crash; a power cut may undo
        the last of them, which only hands a delivery out once more."""
        if self._db is None:
            raise GatewayError("bus_unavailable", "the local bus is not started")
        db = self._db
        async with self._lock:
            if durable != self._durable:
                await db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            try:
                # Inside the try: a cancelled BEGIN still runs on aiosqlite's thread.
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.execute("COMMIT")
            except BaseException:
                # Queued after whatever ran before; harmless when no transaction is open.
                with contextlib.suppress(sqlite3.OperationalError):
                    await asyncio.shield(db.execute("ROLLBACK"))
                raise

    async def _read(self, sql: str, params: Any = ()) -> list[Any]:
        if self._db is None:
            raise GatewayError("bus_unavailable", "the local bus is not started")
        async with self._lock, self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # -- topology and publishing -------------------------------------------------------------

    async def declare(self, units: Iterable[str]) -> None:
        codes = [(check_unit_code(u),) for u in units]
        async with self._tx(durable=True) as db:
            await db.executemany("INSERT OR IGNORE INTO bus_units (code) VALUES (?)", codes)

    async def _declared(self, units: Iterable[str]) -> set[str]:
        wanted = sorted(set(units))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._read(f"SELECT code FROM bus_units WHERE code IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    async def publish(self, delivery: Delivery) -> None:
        await self.publish_many([delivery])

    async def publish_many(self, deliveries: Iterable[Delivery]) -> None:
        batch = list(deliveries)
        if not batch:
            return
        known = await self._declared(d.recipient for d in batch)
        missing = {d.recipient for d in batch} - known
        batch = [d for d in batch if d.recipient in known]
        now = self.clock()
        rows = []
        envelopes = []
        for d in batch:
            claim = None
            body = d.body
            if len(body) > self.claim_check_bytes:
                claim, body = await self.claims.put(d.body), b""
            env = codec.new_envelope(
                d, now=now, expires_at=self.policy.expires_at(d.priority, now), claim=claim
            )
            envelopes.append(env)
            rows.append(self._row(env, body, now))
        if rows:
            async with self._tx(durable=True) as db:
                await db.executemany(_INSERT, rows)
        self._wake({d.recipient for d in batch})
        if self.observer is not None:  # together: the observer commits them in one batch
            observer = self.observer
            await asyncio.gather(
                *(observer(codec.transition(env, Outcome.QUEUED, now)) for env in envelopes)
            )
        if missing:
            raise GatewayError(
                "unknown_recipient", f"no bus queue for unit(s) {', '.join(sorted(missing))}"
            )

    @staticmethod
    def _row(env: codec.Waybill, body: bytes, available_at: float) -> tuple[Any, ...]:
        headers = json.dumps(codec.envelope_headers(env), sort_keys=True)
        return (env.recipient, env.delivery_id, headers, body, available_at)

    def _wake(self, units: Iterable[str]) -> None:
        for unit in units:
            for event in self._wakeups.get(unit, ()):
                event.set()

    # -- consuming ---------------------------------------------------------------------------

    async def consume(
        self, unit: str, handler: Handler, *, prefetch: int | None = None
    ) -> _LocalConsumer:
        if not await self._declared([unit]):
            raise GatewayError("unknown_recipient", f"no bus queue for unit {unit}")
        consumer = _LocalConsumer(self, unit, handler, prefetch or self.prefetch)
        self._consumers[id(consumer)] = consumer
        self._wakeups.setdefault(unit, set()).add(consumer.wakeup)
        consumer.begin()
        return consumer

    def _forget(self, consumer: _LocalConsumer) -> None:
        self._consumers.pop(id(consumer), None)
        self._wakeups.get(consumer.unit, set()).discard(consumer.wakeup)

    async def _lease(self, unit: str, limit: int) -> list[tuple[int, str, bytes, int]]:
        now = self.clock()
        async with (
            self._tx() as db,
            db.execute(
                "UPDATE bus_messages SET state = 'leased', lease_owner = :owner, "
                "lease_until = :until, handouts = handouts + 1 WHERE seq IN ("
                f"SELECT seq FROM bus_messages WHERE unit = :unit AND {_DUE} "
                "ORDER BY seq LIMIT :limit) RETURNING seq, envelope, body, handouts",
                {
                    "owner": self._owner,
                    "until": now + self.lease,
                    "unit": unit,
                    "now": now,
                    "limit": limit,
                },
            ) as cur,
        ):
            rows = list(await cur.fetchall())
        return sorted((r[0], r[1], r[2], r[3]) for r in rows)

    async def _settle(self, seq: int, env: codec.Waybill, step: flow.Step) -> None:
        """Report the step, then make it so: acknowledge, reschedule or bury the delivery."""
        now = self.clock()
        retry_at = None if step.delay_ms is None else now + step.delay_ms / 1000
        if self.observer is not None:
            await self.observer(
                codec.transition(env, step.outcome, now, reason=step.reason, retry_at=retry_at)
            )
        mine = (seq, self._owner)
        async with self._tx() as db:
            if step.outcome is Outcome.DELIVERED:
                await db.execute("DELETE FROM bus_messages WHERE seq = ? AND lease_owner = ?", mine)
            elif step.outcome is Outcome.RETRYING:
                cur = await db.execute(
                    "DELETE FROM bus_messages WHERE seq = ? AND lease_owner = ? RETURNING body",
                    mine,
                )
                row = await cur.fetchone()
                if row is not None:  # else the lease was lost and someone else has it
                    assert retry_at is not None
                    await db.execute(_INSERT, self._row(env.next_attempt(), row[0], retry_at))
            else:
                await db.execute(
                    "UPDATE bus_messages SET state = 'dead', lease_owner = NULL, reason = ?, "
                    "dead_at = ?, expired = ? WHERE seq = ? AND lease_owner = ?",
                    (step.reason, now, int(step.outcome is Outcome.EXPIRED), *mine),
                )

    async def _release(self, seq: int) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE bus_messages SET state = 'ready', lease_owner = NULL "
                "WHERE seq = ? AND lease_owner = ?",
                (seq, self._owner),
            )

    async def _poll_loop(self) -> None:
        """Wake consumers for work this process did not publish itself: other processes'
        publishes, retries coming due and leases running out."""
        while True:
            await asyncio.sleep(self.poll_interval)
            if not self._wakeups:
                continue
            try:
                rows = await self._read(
                    f"SELECT DISTINCT unit FROM bus_messages WHERE {_DUE}", {"now": self.clock()}
                )
            except Exception:
                log.warning("local bus poll failed", exc_info=True)
                continue
            self._wake(r[0] for r in rows)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                async with self._tx() as db:
                    await db.execute(
                        "UPDATE bus_messages SET lease_until = ? "
                        "WHERE state = 'leased' AND lease_owner = ?",
                        (self.clock() + self.lease, self._owner),
                    )
            except Exception:
                log.warning("local bus lease renewal failed", exc_info=True)

    # -- operators ---------------------------------------------------------------------------

    async def counters(self, units: Iterable[str] | None = None) -> dict[str, UnitCounters]:
        now = self.clock()
        rows = await self._read(
            "SELECT unit, "
            "SUM(state = 'ready' AND available_at <= :now) + "
            "SUM(state = 'leased' AND lease_until < :now), "
            "SUM(state = 'leased' AND lease_until >= :now), "
            "SUM(state = 'ready' AND available_at > :now), "
            "SUM(state = 'dead') FROM bus_messages GROUP BY unit",
            {"now": now},
        )
        found = {r[0]: UnitCounters(r[1], r[2], r[3], r[4]) for r in rows}
        declared = [r[0] for r in await self._read("SELECT code FROM bus_units ORDER BY code")]
        wanted = declared if units is None else [u for u in units if u in set(declared)]
        return {u: found.get(u, UnitCounters(0, 0, 0, 0)) for u in wanted}

    async def dead_letters(self, unit: str) -> list[DeadLetter]:
        rows = await self._read(
            "SELECT envelope, reason, dead_at, expired FROM bus_messages "
            "WHERE unit = ? AND state = 'dead' ORDER BY dead_at, seq",
            (unit,),
        )
        out = []
        for headers, reason, dead_at, expired in rows:
            env = codec.parse_headers(json.loads(headers))
            out.append(
                DeadLetter(
                    env.delivery_id,
                    env.document_key,
                    env.recipient,
                    env.attempt,
                    env.priority,
                    reason or "",
                    dead_at,
                    bool(expired),
                )
            )
        return out

    async def redrive(self, unit: str, ids: Collection[str] | None = None) -> int:
        now = self.clock()
        wanted = None if ids is None else set(ids)
        moved: list[codec.Waybill] = []
        async with self._tx(durable=True) as db:
            cur = await db.execute(
                "SELECT seq, envelope, body FROM bus_messages "
                "WHERE unit = ? AND state = 'dead' ORDER BY dead_at, seq",
                (unit,),
            )
            for seq, headers, body in await cur.fetchall():
                env = codec.parse_headers(json.loads(headers))
                if wanted is not None and env.delivery_id not in wanted:
                    continue
                env = env.redriven(now, self.policy.expires_at(env.priority, now))
                await db.execute("DELETE FROM bus_messages WHERE seq = ?", (seq,))
                await db.execute(_INSERT, self._row(env, body, now))
                moved.append(env)
        self._wake([unit])
        if self.observer is not None:
            for env in moved:
                await self.observer(codec.transition(env, Outcome.REDRIVEN, now))
        return len(moved)


_INSERT = (
    "INSERT INTO bus_messages (unit, delivery_id, envelope, body, state, available_at) "
    "VALUES (?, ?, ?, ?, 'ready', ?)"
)


class _LocalConsumer:
    def __init__(self, bus: LocalBus, unit: str, handler: Handler, prefetch: int) -> None:
        self.bus = bus
        self.unit = unit
        self.handler = handler
        self.prefetch = prefetch
        self.wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(prefetch)
        self._active: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self.wakeup.set()
        self._loop = asyncio.create_task(self._run(), name=f"localbus-consume-{self.unit}")

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            free = 1
            while free < self.prefetch and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            self.wakeup.clear()
            try:
                rows = await self.bus._lease(self.unit, free)
            except Exception:
                log.warning("local bus lease failed for %s", self.unit, exc_info=True)
                rows = []
            for _ in range(free - len(rows)):
                self._slots.release()
            for seq, headers, body, handouts in rows:
                task = asyncio.create_task(self._handle(seq, headers, body, handouts > 1))
                self._active.add(task)
                task.add_done_callback(self._active.discard)
            if not rows:
                # The poller (or a publish in this process) wakes us; the timeout is a
                # safety net only, since every idle unit's lease query costs a transaction.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), IDLE_RECHECK)

    async def _handle(self, seq: int, headers: str, body: bytes, redelivered: bool) -> None:
        try:
            env = codec.parse_headers(json.loads(headers))

            async def fetch() -> bytes:
                return body if env.claim is None else await self.bus.claims.get(env.claim)

            step = await flow.attempt(
                self.handler,
                env,
                fetch,
                redelivered=redelivered,
                policy=self.bus.policy,
                clock=self.bus.clock,
            )
            await self.bus._settle(seq, env, step)
        except asyncio.CancelledError:
            # Stopped mid-attempt: not acknowledged, so it is handed out again.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.bus._release(seq))
            raise
        except Exception:
            # The observer or the store failed: hand the delivery out again a little later.
            log.warning(
                "delivery seq %s on %s not settled; it will come back",
                seq,
                self.unit,
                exc_info=True,
            )
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await self.bus._release(seq)
        finally:
            self._slots.release()

    async def stop(self, grace: float = 10.0) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        await flow.drain(self._active, grace)
        self.bus._forget(self)
