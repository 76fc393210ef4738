"""Group commit: one writer per process runs the database work of every request (ledger
events and the rows that go with them) in shared transactions, one per batch, and answers each
request once its batch is durable. A batch takes the jobs that wait when its transaction holds
the ledger lock: those handed in while another process held it join it.

A job is an async function of a :class:`Batch`. It reads and checks first and writes last: a
:class:`~gateway.errors.GatewayError` it raises is its own refusal (its ledger events are taken
back, the batch goes on), so it must raise before its first write. Any other error fails the
whole batch, which is then run again one job per transaction, so that only the job at fault
fails. Nothing is answered before the commit: what a caller was told is on disk.

A job that reads only what was committed before its batch (a submission, whose twin in the
same batch is caught by the unique constraints and answered on the one-by-one run; an inbox
acknowledgement, which reads its own copy after :meth:`Batch.fresh`) runs ``independent``: its
rows (:meth:`Batch.write`) wait and are written together with the other jobs' rows for the
same statement, in one executemany each, when the batch ends or before the next job that is
not independent. A batch of letters thus makes a few statements, not a few per letter.

An independent job may also name the row it will read first (a :class:`Lookup` and its key):
the batch reads the rows of all its jobs' keys in one statement before the first job runs, and
a job is given its row from there as long as nothing has been written in the batch yet (after
that, or on the one-by-one run, it reads its own).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import GatewayError
from gateway.ledger import Event, SqlLedger
from gateway.ledger.append import Appender, Mark

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_JOBS = 256  # jobs in one transaction
MAX_EVENTS = 4000  # ledger events in one transaction (a job with more runs alone)

Values = Mapping[str, object]

# What the jobs of a batch read first, read once for all of them: the rows found for each key
# (a key with no row is left out). Make it once, like a statement: lookups are grouped by it.
Lookup = Callable[[AsyncConnection, Sequence[Any]], Awaitable[Mapping[Any, Any]]]


@dataclass
class Batch:
    """What a job works with: the batch's connection, its ledger appender and clock reading,
    and the work to do once it has committed."""

    conn: AsyncConnection
    log: Appender
    now: datetime
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    independent: bool = False  # the job running now may leave its rows for later
    _pending: list[tuple[Executable, Values]] = field(default_factory=list)
    _touched: set[str] = field(default_factory=set)
    # Read ahead: per lookup, the keys asked and what was found for them.
    _found: dict[Lookup, tuple[frozenset[Any], Mapping[Any, Any]]] = field(default_factory=dict)

    async def look_up(self, lookup: Lookup, key: Any) -> Any:
        """The row ``lookup`` finds for ``key`` (None if none): read ahead with the other jobs'
        keys while the batch has written nothing, else read now."""
        asked, found = self._found.get(lookup, (frozenset(), {}))
        if key in asked:
            return found.get(key)
        return (await lookup(self.conn, [key])).get(key)

    async def read_ahead(self, wanted: Mapping[Lookup, Sequence[Any]]) -> None:
        for lookup, keys in wanted.items():
            self._found[lookup] = (frozenset(keys), await lookup(self.conn, keys))

    def writes(self) -> None:
        """Rows are about to be written: what was read ahead may no longer be so."""
        self._found.clear()

    def append(self, events: list[Event]) -> list[int]:
        return self.log.add(events)

    async def write(
        self, statement: Executable, rows: Sequence[Values], *, keys: Iterable[str] = ()
    ) -> None:
        """Write ``rows`` with ``statement`` (an insert, or an update whose row names its key):
        now, or, in an independent job, with the same statement's rows of the batch's other
        jobs (rows are gathered by statement object: make it once, not per call). ``keys``
        name what the rows are about, for :meth:`fresh`."""
        if not self.independent:
            self.writes()
            await self.conn.execute(statement, list(rows))
            return
        self._pending += [(statement, row) for row in rows]
        self._touched.update(keys)

    async def fresh(self, key: str) -> None:
        """Make what earlier jobs of the batch wrote about ``key`` readable."""
        if key in self._touched:
            await self.write_pending()

    async def write_pending(self) -> None:
        """The waiting rows, one executemany per statement (and set of columns), in the
        order the statements were first used: a package before its copies."""
        if self._pending:
            self.writes()
        groups: dict[tuple[Executable, frozenset[str]], list[Values]] = {}
        for statement, row in self._pending:
            groups.setdefault((statement, frozenset(row)), []).append(row)
        self._pending.clear()
        self._touched.clear()
        for (statement, _), rows in groups.items():
            await self.conn.execute(statement, rows)

    def mark(self) -> tuple[Mark, int]:
        return self.log.mark(), len(self._pending)

    def reset(self, mark: tuple[Mark, int]) -> None:
        """Take back the events and waiting rows of a job that was refused."""
        self.log.reset(mark[0])
        del self._pending[mark[1] :]


Job = Callable[[Batch], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class BatchTimes:
    """A committed batch, for the metrics: its jobs, how long it waited for the ledger lock
    (from asking for a connection to holding the lock and the tree's head), and how long it
    held it (until its commit was done), in seconds."""

    jobs: int
    waited: float
    held: float


@dataclass(frozen=True, slots=True)
class _Item:
    job: Job[Any]
    independent: bool
    reads: tuple[Lookup, Any] | None  # the lookup and key it reads first
    future: asyncio.Future[Any]


class Writer:
    """The process's one writer. ``run`` may be called from any task; the first caller to
    find it idle becomes the leader and flushes batches until no job waits."""

    def __init__(self, ledger: SqlLedger, *, max_jobs: int = MAX_JOBS) -> None:
        self.ledger = ledger
        self.max_jobs = max_jobs
        self._waiting: collections.deque[_Item] = collections.deque()
        self._leader: asyncio.Task[None] | None = None
        self._unlocked = asyncio.Event()  # no transaction of this writer holds the lock
        self._unlocked.set()
        self.batches = 0  # committed transactions, for tests
        self.jobs = 0
        self.on_batch: list[Callable[[BatchTimes], None]] = []  # after each commit

    async def run(
        self,
        job: Job[T],
        *,
        independent: bool = False,
        reads: tuple[Lookup, Any] | None = None,
    ) -> T:
        """Run ``job`` in the next batch; return its result once the batch has committed.
        ``independent``: the job reads nothing that earlier jobs of its batch may have written
        (or calls :meth:`Batch.fresh` first), so their rows may still be waiting. ``reads``:
        the lookup and key an independent job reads first (:meth:`Batch.look_up`)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Item(job, independent, reads if independent else None, future))
        if self._leader is None or self._leader.done():
            self._leader = asyncio.create_task(self._lead(), name="gateway-writer")
        # The job runs even if the caller goes away: it may already be written.
        return await asyncio.shield(future)

    async def unlocked(self) -> None:
        """Return when no transaction of this writer holds the ledger's lock: at once, or
        when the one in progress has ended. Work that keeps the event loop busy for a while
        (verifying a letter) waits for this first, so that it does not stretch a transaction
        that every process waits for: it runs while the next one waits for the lock."""
        await self._unlocked.wait()

    async def record(self, events: list[Event]) -> list[int]:
        """Ledger events that come with no other change (refusals, operator actions)."""

        async def append(batch: Batch) -> list[int]:
            return batch.append(events)

        return await self.run(append)

    async def drain(self) -> None:
        """Wait until every job handed in so far has been answered."""
        while self._leader is not None and not self._leader.done():
            await asyncio.shield(self._leader)

    async def _lead(self) -> None:
        while self._waiting:
            taken: list[_Item] = []
            try:
                await self._flush(taken)
            except Exception as e:
                taken = taken or self._take()  # it failed before the lock: these were next
                if len(taken) == 1:
                    _settle(taken[0].future, error=e)
                    continue
                log.warning("a batch of %d jobs failed (%r); one by one now", len(taken), e)
                for item in taken:
                    try:
                        await self._flush([item])
                    except Exception as e1:
                        _settle(item.future, error=e1)

    def _take(self) -> list[_Item]:
        return [self._waiting.popleft() for _ in range(min(len(self._waiting), self.max_jobs))]

    async def _flush(self, items: list[_Item]) -> None:
        """Run ``items`` in one transaction; if none are given, the waiting jobs, taken into
        ``items`` once the ledger lock is held: those that came while another process held it
        join the batch instead of waiting for the next.

        The work that waited for :meth:`unlocked` resumes a turn of the event loop after the
        batch's answers: a caller is woken through ``asyncio.shield``, one turn later than a
        waiter of the event, and would otherwise be answered only once that work is done."""
        try:
            await self._commit(items)
        finally:
            asyncio.get_running_loop().call_soon(self._unlocked.set)

    async def _commit(self, items: list[_Item]) -> None:
        answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        asked = time.perf_counter()
        async with self.ledger.transaction() as conn:
            self._unlocked.clear()
            locked = time.perf_counter()
            if not items:
                items += self._take()
            appender = await self.ledger.appender(conn)
            batch = Batch(conn, appender, self.ledger.clock())
            if len(items) > 1:
                wanted: dict[Lookup, list[Any]] = {}
                for item in items:
                    if item.reads is not None:
                        wanted.setdefault(item.reads[0], []).append(item.reads[1])
                await batch.read_ahead(wanted)
            start = appender.size
            for item in items:
                if not item.independent:
                    await batch.write_pending()
                    batch.writes()  # it may write at once
                batch.independent = item.independent
                mark = batch.mark()
                try:
                    answers.append((item.future, await item.job(batch), None))
                except GatewayError as e:
                    batch.reset(mark)
                    answers.append((item.future, None, e))
                if appender.size - start >= MAX_EVENTS:
                    break
            await batch.write_pending()
            await appender.flush(conn)
        times = BatchTimes(len(answers), locked - asked, time.perf_counter() - locked)
        self.batches += 1
        self.jobs += len(answers)
        for observe in self.on_batch:
            observe(times)
        for future, value, error in answers:
            _settle(future, value, error)
        for hook in batch.after_commit:
            try:
                hook()
            except Exception:
                log.exception("after-commit work failed")
        if len(answers) < len(items):  # the rest go first in the next batch
            self._waiting.extendleft(reversed(items[len(answers) :]))


def _settle(
    future: asyncio.Future[Any], value: Any = None, error: BaseException | None = None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
