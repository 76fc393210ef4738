"""The ledger store: appends events as Merkle-logged entries, signs checkpoints, serves proofs,
receipts and queries, on SQLite or PostgreSQL through one SQLAlchemy async engine.

Concurrency: every append runs in a write transaction that first takes the ledger lock
(``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL ``LOCK TABLE ledger_entry IN EXCLUSIVE MODE``,
in a function that also reads the tree's head), reads the tree's size and frontier, and
inserts the new rows. Within a process, concurrent ``append`` calls are grouped into one
transaction (group commit), so the lock is taken once per batch, not once per event;
``gateway.ledger.append`` builds the rows of one transaction. See docs/ledger.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import BigInteger, any_, bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import Settings
from gateway.db.engine import open_engine, reader, write_transaction
from gateway.errors import GatewayError
from gateway.ledger.append import Appender, Head, Loaded, Transaction
from gateway.ledger.audit import Finding, LogAuditor, StoredCheckpoint, StoredRow
from gateway.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    parse_checkpoint,
    parse_note,
)
from gateway.ledger.cosignature import (
    Cosignature,
    WitnessKey,
    verify_cosignature,
    with_cosignatures,
    witness_of,
)
from gateway.ledger.entry import Entry, Event, EventType, parse_entry
from gateway.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    NodeId,
    build_proof,
    consistency_plan,
    fold,
    inclusion_plan,
    plan_nodes,
    root_nodes,
)
from gateway.ledger.models import checkpoint_table, cosignature_table, entry_table
from gateway.ledger.query import (
    Activity,
    Page,
    Query,
    parse_minute,
    select_activity,
    select_entries,
)
from gateway.ledger.receipt import Receipt, ReceiptEntry, build_receipt

log = logging.getLogger(__name__)

MAX_BATCH = 2000  # events per append transaction
MAX_RECEIPT_ENTRIES = 1000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def node_row(node: NodeId) -> int:
    """The entry row that stores a node: the one whose leaf completed it."""
    level, index = node
    return ((index + 1) << level) - 1


def _node_hashes_in(
    rows: dict[int, tuple[bytes, bytes]], nodes: Iterable[NodeId]
) -> dict[NodeId, bytes]:
    """The hashes of ``nodes`` from their rows (seq: leaf hash, tree nodes)."""
    hashes: dict[NodeId, bytes] = {}
    for node in nodes:
        level, _ = node
        row = rows.get(node_row(node))
        if row is None:
            raise GatewayError("ledger_corrupt", f"entry {node_row(node)} is missing")
        h = row[0] if level == 0 else row[1][(level - 1) * HASH_SIZE : level * HASH_SIZE]
        if len(h) != HASH_SIZE:
            raise GatewayError("ledger_corrupt", f"entry {node_row(node)} lacks tree nodes")
        hashes[node] = h
    return hashes


# PostgreSQL: the ledger's lock and, in the same round trip, the tree's size, its newest
# checkpoint's id and the rows of its frontier (migration 0012_ledger_lock_head).
_LOCK_AND_HEAD = text("SELECT size, checkpoint_id, seq, leaf_hash, nodes FROM ledger_lock_head()")


@dataclass(frozen=True)
class VerifyReport:
    entries: int  # rows checked
    checkpoints: int  # checkpoints checked (root, and signature when a key was given)
    root: bytes  # recomputed tree head of all rows checked
    finding: Finding | None  # the first problem, or None

    @property
    def ok(self) -> bool:
        return self.finding is None


class SqlLedger:
    """The delivery ledger on a SQLAlchemy async engine (SQLite or PostgreSQL).

    ``signer`` signs checkpoints (None: a read-only ledger that can still prove and verify);
    ``verifier`` is the public side used in receipts (defaults to the signer's).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        origin: str,
        signer: NoteSigner | None = None,
        verifier: NoteVerifier | None = None,
        certificate_chain: str | None = None,
        checkpoint_entries: int = 1000,
        checkpoint_seconds: int = 60,
        clock: Callable[[], datetime] = _utcnow,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if signer is not None and signer.name != origin:
            raise ValueError(f"the checkpoint key is named {signer.name!r}, not {origin!r}")
        self.engine = engine
        self.origin = origin
        self.signer = signer
        self.verifier = verifier or signer
        self.certificate_chain = certificate_chain
        self.checkpoint_entries = checkpoint_entries
        self.checkpoint_interval = timedelta(seconds=checkpoint_seconds)
        self.clock = clock
        self.max_batch = max_batch
        self._pending: list[tuple[list[Event], asyncio.Future[list[int]]]] = []
        self._flush_lock = asyncio.Lock()
        self._head: Head | None = None
        self._open: dict[AsyncConnection, Transaction] = {}
        # Reads see only rows that never change, so they need no transaction around them.
        self._reader = reader(engine)

    # -- appending -------------------------------------------------------------------------

    async def append(self, events: Iterable[Event]) -> list[int]:
        """Append events; return their sequence numbers. Concurrent calls share transactions.

        When this returns the events are committed. If the call is cancelled before its events
        were taken into a batch, they are not appended.
        """
        batch = list(events)
        if not batch:
            return []
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        item = (batch, future)
        self._pending.append(item)
        try:
            async with self._flush_lock:
                while not future.done():
                    await self._flush_one_batch()
        except asyncio.CancelledError:
            if item in self._pending:
                self._pending.remove(item)
            raise
        return future.result()

    async def _flush_one_batch(self) -> None:
        taken: list[tuple[list[Event], asyncio.Future[list[int]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self.max_batch):
            events, future = self._pending.pop(0)
            taken.append((events, future))
            count += len(events)
        try:
            async with self.transaction() as conn:
                seqs = await self.append_in(conn, [e for events, _ in taken for e in events])
        except BaseException as e:
            for _, future in taken:
                if not future.done():
                    if isinstance(e, Exception):
                        future.set_exception(e)
                    else:
                        future.cancel()
            if not isinstance(e, Exception):
                raise
            return
        start = 0
        for events, future in taken:
            if not future.done():
                future.set_result(seqs[start : start + len(events)])
            start += len(events)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction holding the ledger lock, for callers that must commit their own
        rows atomically with ledger events (``append_in``). Keep it short: appends from every
        process wait for it."""
        state = Transaction()
        async with write_transaction(self.engine) as conn:
            state.loaded = await self._lock(conn)
            self._open[conn] = state
            try:
                yield conn
            finally:
                del self._open[conn]
        if state.head is not None:  # committed
            self._head = state.head

    async def append_in(self, conn: AsyncConnection, events: Sequence[Event]) -> list[int]:
        """Append events inside the caller's transaction (opened with :meth:`transaction`);
        they commit or roll back with it."""
        appender = await self.appender(conn)
        seqs = appender.add(events)
        await appender.flush(conn)
        return seqs

    async def appender(self, conn: AsyncConnection) -> Appender:
        """An :class:`Appender` for the caller's write transaction: events get their sequence
        numbers at once and are written together by ``flush``."""
        state = self._open.get(conn)
        loaded = await self._lock(conn) if state is None else None
        tree, last_leaf, last = loaded or await self._current(conn)
        return Appender(self, tree, last_leaf, last, state)

    async def _lock(self, conn: AsyncConnection) -> Loaded | None:
        """Take the ledger lock. SQLite's write transaction holds it from its BEGIN IMMEDIATE;
        PostgreSQL's function takes it and brings the tree's head in the same round trip."""
        if conn.dialect.name == "postgresql":
            return await self._lock_and_load(conn)
        return None

    async def _current(self, conn: AsyncConnection) -> Loaded:
        """The tree as it stands in the caller's transaction: what taking the lock brought,
        the first time it is asked, else read again (the transaction may have appended)."""
        state = self._open.get(conn)
        if state is not None and state.loaded is not None:
            loaded, state.loaded = state.loaded, None
            return loaded
        if conn.dialect.name == "postgresql":
            return await self._lock_and_load(conn)  # the lock is held: taking it again is free
        return await self._load(conn)

    async def _load(self, conn: AsyncConnection) -> Loaded:
        """SQLite: the tree's frontier, last leaf and newest checkpoint, under the lock; the
        frontier and checkpoint this process committed last are taken again when the newest
        row is still the one it wrote."""
        t = entry_table.c
        stmt = select(t.seq, t.leaf_hash).order_by(t.seq.desc()).limit(1)
        row = (await conn.execute(stmt)).first()
        size, last_leaf = (row[0] + 1, row[1]) if row else (0, None)
        head = self._head
        if head is not None and (head.size, head.last_leaf) == (size, last_leaf):
            return CompactRange(size, list(head.frontier)), last_leaf, head.checkpoint
        ids = root_nodes(size)
        hashes = await self._node_hashes(conn, ids)
        tree = CompactRange(size, [hashes[i] for i in ids])
        return tree, last_leaf, await self._latest_checkpoint(conn)

    async def _lock_and_load(self, conn: AsyncConnection) -> Loaded:
        """PostgreSQL: the lock and the tree's head in one query; the frontier and checkpoint
        this process committed last are taken again when nothing was appended or signed
        since, and the checkpoint is read only when its id changed."""
        found = (await conn.execute(_LOCK_AND_HEAD)).all()  # one row at least (a left join)
        size, checkpoint_id = found[0][:2]
        rows = {seq: (leaf, nodes) for _, _, seq, leaf, nodes in found if seq is not None}
        last_leaf = rows[size - 1][0] if size else None
        head = self._head
        if head is not None and (head.size, head.last_leaf) == (size, last_leaf):
            tree = CompactRange(size, list(head.frontier))
        else:
            ids = root_nodes(size)
            hashes = _node_hashes_in(rows, ids)
            tree = CompactRange(size, [hashes[i] for i in ids])
        last = head.checkpoint if head is not None else None
        if (last.id if last else None) != checkpoint_id:
            last = await self._latest_checkpoint(conn)
        return tree, last_leaf, last

    async def _node_hashes(
        self, conn: AsyncConnection, nodes: Iterable[NodeId], *, size: int | None = None
    ) -> dict[NodeId, bytes]:
        """The stored hashes of ``nodes``, in one query. With ``size``, also checks that the
        log has that many entries (rows are contiguous, so entry ``size - 1`` must exist)."""
        wanted = set(nodes)
        seqs = {node_row(n) for n in wanted}
        if size:
            seqs.add(size - 1)
        if not seqs:
            return {}
        t = entry_table.c
        if conn.dialect.name == "postgresql":  # one prepared statement whatever the count
            where = t.seq == any_(bindparam("seqs", sorted(seqs), type_=ARRAY(BigInteger)))
        else:
            where = t.seq.in_(sorted(seqs))
        result = await conn.execute(select(t.seq, t.leaf_hash, t.nodes).where(where))
        rows = {seq: (leaf, nodes) for seq, leaf, nodes in result}
        if size and size - 1 not in rows:
            raise GatewayError("not_found", f"the ledger has fewer than {size} entries")
        return _node_hashes_in(rows, wanted)

    # -- checkpoints -----------------------------------------------------------------------

    async def checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree now (on demand)."""
        if self.signer is None:
            raise GatewayError("config_invalid", "this ledger has no checkpoint signing key")
        async with self.transaction() as conn:
            signed = await self._sign_current(conn, due=None)
        assert signed is not None
        return signed

    async def checkpoint_if_due(self) -> StoredCheckpoint | None:
        """Sign a checkpoint if the tree grew and the last one is older than the interval."""
        if self.signer is None:
            return None
        async with self.transaction() as conn:
            return await self._sign_current(conn, due=self.checkpoint_interval)

    async def _sign_current(
        self, conn: AsyncConnection, *, due: timedelta | None
    ) -> StoredCheckpoint | None:
        tree, last_leaf, last = await self._current(conn)
        now = self.clock()
        if (
            due is not None
            and last is not None
            and (tree.size == last.tree_size or now - last.created_at < due)
        ):
            return None  # nothing new, or the last checkpoint is recent enough
        signed = await self.insert_checkpoint(
            conn, Checkpoint(self.origin, tree.size, tree.root()), now
        )
        self._open[conn].head = Head(tree.size, tuple(tree.hashes), last_leaf, signed)
        return signed

    async def run_checkpointer(self) -> None:
        """Sign due checkpoints every interval until cancelled (for idle periods; busy logs get
        theirs from ``append``)."""
        while True:
            await asyncio.sleep(self.checkpoint_interval.total_seconds())
            try:
                await self.checkpoint_if_due()
            except Exception:
                log.exception("signing a ledger checkpoint failed")

    async def insert_checkpoint(
        self, conn: AsyncConnection, head: Checkpoint, now: datetime
    ) -> StoredCheckpoint:
        assert self.signer is not None
        note = head.sign(self.signer)
        result = await conn.execute(
            insert(checkpoint_table).returning(checkpoint_table.c.id),
            {"tree_size": head.size, "root_hash": head.root, "created_at": now, "note": note},
        )
        return StoredCheckpoint(result.scalar_one(), head.size, head.root, now, note)

    async def _latest_checkpoint(self, conn: AsyncConnection) -> StoredCheckpoint | None:
        c = checkpoint_table.c
        row = (await conn.execute(select(checkpoint_table).order_by(c.id.desc()).limit(1))).first()
        return StoredCheckpoint(*row) if row else None

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        async with self._reading() as conn:
            return await self._latest_checkpoint(conn)

    async def checkpoints(self, *, after_id: int = 0, limit: int = 1000) -> list[StoredCheckpoint]:
        c = checkpoint_table.c
        stmt = select(checkpoint_table).where(c.id > after_id).order_by(c.id).limit(limit)
        async with self._reading() as conn:
            return [StoredCheckpoint(*row) for row in await conn.execute(stmt)]

    async def checkpoint_of_size(self, size: int) -> StoredCheckpoint | None:
        """The newest checkpoint signed for exactly ``size`` entries."""
        c = checkpoint_table.c
        stmt = select(checkpoint_table).where(c.tree_size == size).order_by(c.id.desc()).limit(1)
        async with self._reading() as conn:
            row = (await conn.execute(stmt)).first()
        return StoredCheckpoint(*row) if row else None

    async def add_cosignature(
        self, note: str, line: str, witnesses: Sequence[WitnessKey]
    ) -> tuple[StoredCheckpoint, Cosignature]:
        """Keep a witness's cosignature of one of our checkpoints (``note`` exactly as we
        signed it): witness_unknown unless it is by one of ``witnesses``, proof_invalid unless
        it verifies, not_found unless we signed that note. Idempotent per witness."""
        witness = witness_of(line, witnesses)
        cosignature = verify_cosignature(note, line, witness)
        size = parse_checkpoint(parse_note(note).text).size
        c = checkpoint_table.c
        async with write_transaction(self.engine) as conn:
            mine = select(checkpoint_table).where(c.tree_size == size, c.note == note)
            row = (await conn.execute(mine.limit(1))).first()
            if row is None:
                raise GatewayError("not_found", "the gateway signed no such checkpoint")
            stored = StoredCheckpoint(*row)
            k = cosignature_table.c
            exists = await conn.scalar(
                select(k.id).where(k.checkpoint_id == stored.id, k.witness == witness.vkey)
            )
            if exists is None:
                await conn.execute(
                    insert(cosignature_table).values(
                        checkpoint_id=stored.id,
                        witness=witness.vkey,
                        timestamp=cosignature.timestamp,
                        line=cosignature.line,
                        received_at=self.clock(),
                    )
                )
        return stored, cosignature

    async def _cosignature_lines(self, conn: AsyncConnection, checkpoint_id: int) -> list[str]:
        k = cosignature_table.c
        stmt = select(k.line).where(k.checkpoint_id == checkpoint_id).order_by(k.id)
        return list((await conn.scalars(stmt)).all())

    async def cosigned(self, checkpoint: StoredCheckpoint) -> str:
        """The checkpoint's note with every witness's cosignature line after ours."""
        async with self._reading() as conn:
            return with_cosignatures(
                checkpoint.note, await self._cosignature_lines(conn, checkpoint.id)
            )

    # -- reading and proving ---------------------------------------------------------------

    async def size(self) -> int:
        async with self._reading() as conn:
            return await self._size(conn)

    async def entry(self, seq: int) -> Entry:
        async with self._reading() as conn:
            data = await conn.scalar(select(entry_table.c.data).where(entry_table.c.seq == seq))
        if data is None:
            raise GatewayError("not_found", f"no ledger entry {seq}")
        return parse_entry(data)

    async def tree_head(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` entries (default: all)."""
        async with self._reading() as conn:
            if size is None:
                size = await self._size(conn)
            ids = root_nodes(size)
            hashes = await self._node_hashes(conn, ids, size=size)
        return fold([hashes[i] for i in ids])

    async def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``size`` entries."""
        if not 0 <= seq < size:
            raise GatewayError("not_found", f"entry {seq} is not in a tree of size {size}")
        plan = inclusion_plan(seq, size)
        async with self._reading() as conn:
            return build_proof(plan, await self._node_hashes(conn, plan_nodes(plan), size=size))

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof that the tree of ``new_size`` extends ``old_size``."""
        if not 0 <= old_size <= new_size:
            raise GatewayError("not_found", f"no proof from size {old_size} to {new_size}")
        plan = consistency_plan(old_size, new_size)
        async with self._reading() as conn:
            hashes = await self._node_hashes(conn, plan_nodes(plan), size=new_size)
        return build_proof(plan, hashes)

    async def _size(self, conn: AsyncConnection) -> int:
        last = await conn.scalar(select(func.max(entry_table.c.seq)))
        return 0 if last is None else last + 1

    def _reading(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads, without BEGIN/ROLLBACK round trips (autocommit on
        PostgreSQL, no BEGIN on SQLite): every row it reads is immutable anyway."""
        return self._reader.connect()

    # -- receipts and queries --------------------------------------------------------------

    async def receipt(self, seqs: int | Sequence[int]) -> Receipt:
        """A receipt proving entries against the newest checkpoint that covers them; one is
        signed now if none does yet (and this ledger has the key)."""
        wanted = sorted({seqs} if isinstance(seqs, int) else set(seqs))
        if not wanted:
            raise GatewayError("not_found", "no entry to put in a receipt")
        if len(wanted) > MAX_RECEIPT_ENTRIES:
            raise GatewayError(
                "not_found", f"a receipt holds at most {MAX_RECEIPT_ENTRIES} entries"
            )
        if self.verifier is None:
            raise GatewayError("config_invalid", "receipts need the gateway's public key")
        head = await self.latest_checkpoint()
        if head is None or head.tree_size <= wanted[-1]:
            if await self.size() <= wanted[-1]:
                raise GatewayError("not_found", f"no ledger entry {wanted[-1]}")
            if self.signer is None:
                raise GatewayError(
                    "not_found",
                    f"no signed checkpoint covers entry {wanted[-1]} yet "
                    "(run `gateway ledger checkpoint`)",
                )
            head = await self.checkpoint()
        plans = {seq: inclusion_plan(seq, head.tree_size) for seq in wanted}
        t = entry_table.c
        async with self._reading() as conn:
            result = await conn.execute(select(t.seq, t.data).where(t.seq.in_(wanted)))
            data = {seq: blob for seq, blob in result}
            needed = set().union(*(plan_nodes(p) for p in plans.values()))
            hashes = await self._node_hashes(conn, needed)
            note = with_cosignatures(head.note, await self._cosignature_lines(conn, head.id))
        items = [ReceiptEntry(s, data[s], tuple(build_proof(plans[s], hashes))) for s in wanted]
        return build_receipt(note, items, self.verifier, self.certificate_chain, head.created_at)

    async def receipt_for_document(self, document: str, recipient: str | None = None) -> Receipt:
        """A receipt for every entry of a document; with ``recipient``, its entries for that
        recipient and the document-wide ones (those naming no recipient)."""
        t = entry_table.c
        stmt = select(t.seq).where(t.document == document).order_by(t.seq)
        async with self._reading() as conn:
            rows = await conn.execute(stmt.add_columns(t.recipient).limit(MAX_RECEIPT_ENTRIES))
            seqs = [s for s, r in rows if recipient is None or r in (None, recipient)]
        if not seqs:
            who = f" for recipient {recipient}" if recipient else ""
            raise GatewayError("not_found", f"no ledger entry for document {document}{who}")
        return await self.receipt(seqs)

    async def query(self, query: Query, *, after: int | None = None, limit: int = 100) -> Page:
        """One page of entries matching ``query``, after sequence number ``after``."""
        async with self._reading() as conn:
            rows = (await conn.execute(select_entries(query, after=after, limit=limit))).all()
        entries = [parse_entry(data) for data, _ in rows]
        more = len(rows) == limit
        return Page(entries, rows[-1][1] if more else None)

    async def activity(self, since: datetime) -> list[Activity]:
        """Documents accepted, copies delivered and refusals (by code) per minute since
        ``since``: what the console's overview draws."""
        async with self._reading() as conn:
            rows = await conn.execute(select_activity(conn.dialect.name, since))
            return [
                Activity(parse_minute(minute), EventType(kind), code, count)
                for minute, kind, code, count in rows
            ]

    # -- verification ----------------------------------------------------------------------

    async def verify(
        self,
        verifier: NoteVerifier | None,
        *,
        chunk: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute the whole tree from the stored entries and check every checkpoint;
        ``progress`` is told how many entries each chunk checked."""
        c = checkpoint_table.c
        t = entry_table.c
        columns = (
            t.seq,
            t.time,
            t.type,
            t.document,
            t.sender,
            t.recipient,
            t.package_sha256,
            t.code,
            t.data,
            t.leaf_hash,
            t.nodes,
        )
        async with self._reading() as conn:
            cps = [
                StoredCheckpoint(*r)
                for r in await conn.execute(select(checkpoint_table).order_by(c.id))
            ]
            auditor = LogAuditor(cps, verifier, origin=self.origin)
            after = -1
            while True:
                stmt = select(*columns).where(t.seq > after).order_by(t.seq).limit(chunk)
                rows = (await conn.execute(stmt)).all()
                for row in rows:
                    finding = auditor.feed(StoredRow(*row))
                    if finding is not None:
                        return VerifyReport(auditor.size, auditor.checked, auditor.root(), finding)
                if progress is not None:
                    progress(len(rows))
                if len(rows) < chunk:
                    break
                after = rows[-1][0]
        finding = auditor.finish()
        return VerifyReport(auditor.size, auditor.checked, auditor.root(), finding)


def open_ledger(
    settings: Settings,
    *,
    key: Ed25519PrivateKey | None = None,
    public_key: Ed25519PublicKey | None = None,
    certificate_chain: str | None = None,
    engine: AsyncEngine | None = None,
) -> SqlLedger:
    """A ledger on the configured database (GATEWAY_DATABASE_URL, else SQLite under home).

    ``key`` signs checkpoints; without it the ledger is read-only and ``public_key`` (if given)
    names the key in receipts. Dispose of ``ledger.engine`` when done.
    """
    s = settings.ledger
    signer = NoteSigner(s.origin, key) if key is not None else None
    verifier = NoteVerifier(s.origin, public_key) if public_key is not None else None
    return SqlLedger(
        engine if engine is not None else open_engine(settings),
        origin=s.origin,
        signer=signer,
        verifier=verifier,
        certificate_chain=certificate_chain,
        checkpoint_entries=s.checkpoint_entries,
        checkpoint_seconds=s.checkpoint_seconds,
    )
