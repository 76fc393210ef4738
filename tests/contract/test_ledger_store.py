"""The ledger store's contract, run on SQLite and on the real PostgreSQL (a fresh schema per
test in the shared database, dropped afterwards)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, Integer, Table, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import Base, create_engine, write_transaction
from gateway.db.migrate import check_schema, draft_revision, head_revision
from gateway.errors import GatewayError
from gateway.ledger.checkpoint import NoteSigner, open_checkpoint
from gateway.ledger.entry import Event, EventType
from gateway.ledger.merkle import root_from_leaves, verify_consistency, verify_inclusion
from gateway.ledger.query import Query
from gateway.ledger.receipt import verify_receipt
from gateway.ledger.store import SqlLedger

ORIGIN = "gateway.test/ledger"
KEY = Ed25519PrivateKey.generate()
SIGNER = NoteSigner(ORIGIN, KEY)
A, B, C = "000.00.05.H07", "000.01.05.H07", "000.02.05.H07"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: AsyncEngine, clock: Clock) -> SqlLedger:
    return SqlLedger(
        engine, origin=ORIGIN, signer=SIGNER, checkpoint_entries=10, checkpoint_seconds=60,
        clock=clock,
    )  # fmt: skip


def doc(n: int, sender: str = A) -> str:
    return f"{sender}|{sender},2025/01/15,{n}/UBND"


def submitted(n: int, sender: str = A) -> Event:
    return Event(
        EventType.SUBMITTED, document=doc(n, sender), sender=sender, package_sha256="cd" * 32
    )


def delivered(n: int, recipient: str, sender: str = A) -> Event:
    return Event(EventType.DELIVERED, document=doc(n, sender), sender=sender, recipient=recipient)


async def all_leaves(ledger: SqlLedger, size: int) -> list[bytes]:
    return [(await ledger.entry(i)).leaf_hash for i in range(size)]


async def test_appends_get_consecutive_sequence_numbers(ledger: SqlLedger) -> None:
    assert await ledger.size() == 0
    assert await ledger.append([submitted(1), delivered(1, B)]) == [0, 1]
    assert await ledger.append([submitted(2)]) == [2]
    assert await ledger.append([]) == []
    assert await ledger.size() == 3
    entry = await ledger.entry(1)
    assert (entry.seq, entry.event.recipient, entry.time) == (1, B, ledger.clock())


async def test_concurrent_appends_share_transactions_and_stay_one_sequence(
    ledger: SqlLedger,
) -> None:
    calls = [[submitted(i)] * (1 + i % 3) for i in range(120)]
    results = await asyncio.gather(*(ledger.append(events) for events in calls))
    for events, seqs in zip(calls, results, strict=True):
        assert len(seqs) == len(events)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    flat = sorted(s for seqs in results for s in seqs)
    assert flat == list(range(sum(len(c) for c in calls)))
    assert await ledger.tree_head() == root_from_leaves(await all_leaves(ledger, len(flat)))


@pytest.fixture
async def engines(db_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on the one database, as two gateway processes have."""
    pair = (create_engine(db_url), create_engine(db_url))
    yield pair
    for engine in pair:
        await engine.dispose()


def ledgers(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock, **options: Any
) -> tuple[SqlLedger, SqlLedger]:
    first, second = (
        SqlLedger(e, origin=ORIGIN, signer=SIGNER, clock=clock, **options) for e in engines
    )
    return first, second


async def test_two_ledgers_on_separate_engines_append_as_one_log(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock
) -> None:
    pair = ledgers(engines, clock, checkpoint_entries=25)
    results = await asyncio.gather(
        *(pair[i % 2].append([submitted(i), delivered(i, B)]) for i in range(60))
    )
    assert sorted(s for r in results for s in r) == list(range(120))
    report = await pair[0].verify(SIGNER)
    assert report.ok, report.finding
    assert report.entries == 120


async def test_an_append_waiting_for_the_lock_sees_what_its_holder_committed(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock
) -> None:
    first, second = ledgers(engines, clock)
    await second.append([submitted(0)])  # the head it knows is about to be stale
    async with first.transaction() as conn:
        assert await first.append_in(conn, [submitted(1), submitted(2)]) == [1, 2]
        waiting = asyncio.create_task(second.append([submitted(3)]))
        await asyncio.sleep(0.3)  # it asks for the lock and waits
        assert not waiting.done()
    assert await waiting == [3]
    assert (await second.verify(SIGNER)).ok


async def test_ledgers_taking_turns_see_each_others_entries_and_checkpoints(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock
) -> None:
    """Each append finds the entries and checkpoints the other process wrote since its own last
    commit: the checkpoints fall every n entries of the one log, not of each process. On
    PostgreSQL the tree's frontier is found with one query while the other appender waits."""
    selects: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            selects.append(statement)

    first, second = ledgers(engines, clock, checkpoint_entries=10)
    for i in range(0, 38, 2):
        await first.append([submitted(i)])
        await second.append([submitted(i + 1)])
    sizes = [cp.tree_size for cp in await first.checkpoints()]
    assert sizes == [1, 11, 21, 31]
    report = await second.verify(SIGNER)
    assert report.ok and report.entries == 38
    await first.append([submitted(38)])  # no checkpoint falls due
    event.listen(engines[1].sync_engine, "before_cursor_execute", seen)
    assert await second.append([submitted(39)]) == [39]
    if engines[1].dialect.name == "postgresql":
        assert len(selects) == 1


async def test_every_inclusion_and_consistency_proof_verifies(ledger: SqlLedger) -> None:
    for i in range(37):
        await ledger.append([submitted(i)])
    leaves = await all_leaves(ledger, 37)
    heads = [open_checkpoint(cp.note, SIGNER, ORIGIN) for cp in await ledger.checkpoints()]
    assert [h.size for h in heads] == [1, 11, 21, 31]
    heads.append(open_checkpoint((await ledger.checkpoint()).note, SIGNER, ORIGIN))
    for head in heads:
        assert (
            head.root == root_from_leaves(leaves[: head.size]) == await ledger.tree_head(head.size)
        )
        for seq in range(head.size):
            proof = await ledger.inclusion_proof(seq, head.size)
            verify_inclusion(leaves[seq], seq, head.size, proof, head.root)
    for old in heads:
        for new in heads:
            if old.size <= new.size:
                proof = await ledger.consistency_proof(old.size, new.size)
                verify_consistency(old.size, new.size, old.root, new.root, proof)


async def test_a_checkpoint_is_signed_every_n_entries_within_a_batch(ledger: SqlLedger) -> None:
    await ledger.append([submitted(i) for i in range(45)])
    sizes = [cp.tree_size for cp in await ledger.checkpoints()]
    assert sizes == [10, 20, 30, 40]


async def test_a_checkpoint_is_signed_when_the_interval_has_passed(
    ledger: SqlLedger, clock: Clock
) -> None:
    await ledger.append([submitted(0)])  # the first entry of a log is signed at once
    await ledger.append([submitted(1)])
    assert [cp.tree_size for cp in await ledger.checkpoints()] == [1]
    clock.advance(61)
    await ledger.append([submitted(2)])
    assert [cp.tree_size for cp in await ledger.checkpoints()] == [1, 3]
    await ledger.append([submitted(3)])
    assert await ledger.checkpoint_if_due() is None  # not yet due
    clock.advance(61)
    due = await ledger.checkpoint_if_due()
    assert due is not None and due.tree_size == 4
    clock.advance(61)
    assert await ledger.checkpoint_if_due() is None  # nothing new to sign


async def test_on_demand_checkpoints_are_kept_with_the_old_ones(ledger: SqlLedger) -> None:
    await ledger.append([submitted(0)])
    first = await ledger.latest_checkpoint()
    again = await ledger.checkpoint()
    assert first is not None and again.id > first.id and again.tree_size == first.tree_size
    assert [cp.id for cp in await ledger.checkpoints()] == [first.id, again.id]
    assert (await ledger.checkpoint_of_size(1)) == again
    assert await ledger.checkpoint_of_size(7) is None


async def test_ledger_tables_refuse_update_delete_and_truncate(ledger: SqlLedger) -> None:
    await ledger.append([submitted(0), delivered(0, B)])
    statements = [
        "UPDATE ledger_entry SET recipient = 'x' WHERE seq = 1",
        "DELETE FROM ledger_entry WHERE seq = 1",
        "UPDATE ledger_checkpoint SET tree_size = 5",
        "DELETE FROM ledger_checkpoint",
    ]
    if ledger.engine.dialect.name == "postgresql":
        statements += ["TRUNCATE ledger_entry", "TRUNCATE ledger_checkpoint"]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with ledger.engine.begin() as conn:
                await conn.execute(text(statement))
    assert await ledger.size() == 2
    assert (await ledger.verify(SIGNER)).ok


async def test_append_in_commits_and_rolls_back_with_the_callers_transaction(
    ledger: SqlLedger,
) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE outbox (id INTEGER PRIMARY KEY, seq INTEGER)"))
    async with ledger.transaction() as conn:
        seqs = await ledger.append_in(conn, [submitted(0)])
        await conn.execute(text("INSERT INTO outbox VALUES (1, :seq)"), {"seq": seqs[0]})
    with pytest.raises(RuntimeError):
        async with ledger.transaction() as conn:
            seqs = await ledger.append_in(conn, [submitted(1)])
            await conn.execute(text("INSERT INTO outbox VALUES (2, :seq)"), {"seq": seqs[0]})
            raise RuntimeError("the caller failed after appending")
    async with ledger.engine.connect() as conn:
        assert (await conn.execute(text("SELECT id, seq FROM outbox"))).all() == [(1, 0)]
    assert await ledger.size() == 1
    assert await ledger.append([submitted(2)]) == [1]  # the rolled-back seq is reused
    assert (await ledger.verify(SIGNER)).ok


async def test_append_in_a_write_transaction_of_the_callers_own_takes_the_lock_itself(
    ledger: SqlLedger, db_url: str
) -> None:
    await ledger.append([submitted(0)])
    other = create_engine(db_url)  # like another process, which appends in between
    try:
        await SqlLedger(other, origin=ORIGIN, signer=SIGNER).append([submitted(1)])
        async with write_transaction(ledger.engine) as conn:
            assert await ledger.append_in(conn, [submitted(2), submitted(3)]) == [2, 3]
        assert await ledger.append([submitted(4)]) == [4]
    finally:
        await other.dispose()
    assert (await ledger.verify(SIGNER)).ok


async def test_an_append_cancelled_before_its_batch_is_not_written(ledger: SqlLedger) -> None:
    await ledger.append([submitted(0)])
    async with ledger._flush_lock:  # another batch is being written
        task = asyncio.create_task(ledger.append([submitted(1)]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await ledger.append([submitted(2)]) == [1]
    assert (await ledger.entry(1)).event.document == doc(2)


async def test_receipts_verify_and_sign_a_covering_checkpoint_when_needed(
    ledger: SqlLedger,
) -> None:
    await ledger.append([submitted(i) for i in range(12)])  # checkpoint at 10
    receipt = await ledger.receipt(3)
    verified = verify_receipt(json.loads(receipt.dumps()), KEY.public_key())
    assert verified.checkpoint.size == 10
    assert [e.seq for e in verified.entries] == [3]
    late = await ledger.receipt([11, 4])  # nothing covers 11: sign now
    verified = verify_receipt(json.loads(late.dumps()), KEY.public_key())
    assert verified.checkpoint.size == 12
    assert [e.seq for e in verified.entries] == [4, 11]
    with pytest.raises(GatewayError) as e:
        await ledger.receipt(12)
    assert e.value.code == "not_found"


async def test_receipt_for_a_document_and_one_recipient(ledger: SqlLedger) -> None:
    await ledger.append([submitted(1), delivered(1, B), delivered(1, C), submitted(2)])
    await ledger.append(
        [Event(EventType.STATUS, document=doc(1), sender=B, recipient=A, code="01")]
    )
    whole = await ledger.receipt_for_document(doc(1))
    assert [e.index for e in whole.entries] == [0, 1, 2, 4]
    for_b = await ledger.receipt_for_document(doc(1), recipient=B)
    assert [e.index for e in for_b.entries] == [0, 1]
    with pytest.raises(GatewayError, match="no ledger entry for document"):
        await ledger.receipt_for_document(doc(9))


async def test_a_ledger_without_the_key_proves_but_does_not_sign(
    engine: AsyncEngine, ledger: SqlLedger
) -> None:
    await ledger.append([submitted(0)])  # signed at once: the log's first checkpoint
    await ledger.append([submitted(1), submitted(2)])
    reader = SqlLedger(engine, origin=ORIGIN, verifier=SIGNER)
    with pytest.raises(GatewayError) as e:
        await reader.checkpoint()
    assert e.value.code == "config_invalid"
    assert await reader.checkpoint_if_due() is None
    assert (await reader.receipt(0)).entries[0].index == 0
    with pytest.raises(GatewayError, match="no signed checkpoint covers entry 2"):
        await reader.receipt(2)
    with pytest.raises(GatewayError, match="public key"):
        await SqlLedger(engine, origin=ORIGIN).receipt(0)


async def test_proofs_of_entries_or_sizes_that_do_not_exist_are_not_found(
    ledger: SqlLedger,
) -> None:
    await ledger.append([submitted(i) for i in range(5)])
    for call in (
        ledger.inclusion_proof(5, 5),
        ledger.inclusion_proof(0, 6),
        ledger.consistency_proof(3, 9),
        ledger.consistency_proof(4, 3),
        ledger.entry(5),
        ledger.tree_head(6),
    ):
        with pytest.raises(GatewayError) as e:
            await call
        assert e.value.code == "not_found"


async def test_queries_filter_and_page(ledger: SqlLedger, clock: Clock) -> None:
    start = clock.now
    for i in range(10):
        await ledger.append([submitted(i), delivered(i, B if i % 2 else C)])
        clock.advance(3600)
    await ledger.append([submitted(0, sender=B)])

    async def seqs(query: Query, **kw: object) -> list[int]:
        return [e.seq for e in (await ledger.query(query, **kw)).entries]  # type: ignore[arg-type]

    assert await seqs(Query(document=doc(3))) == [6, 7]
    assert await seqs(Query(unit=B)) == [3, 7, 11, 15, 19, 20]  # recipient or sender
    assert await seqs(Query(recipient=C, events=(EventType.DELIVERED,))) == [1, 5, 9, 13, 17]
    assert await seqs(Query(events=(EventType.SUBMITTED,), unit=A), limit=3) == [0, 2, 4]
    window = Query(since=start + timedelta(hours=2), until=start + timedelta(hours=4))
    assert await seqs(window) == [4, 5, 6, 7]
    pages, after = [], None
    while True:
        page = await ledger.query(Query(unit=A), after=after, limit=7)
        pages.append([e.seq for e in page.entries])
        after = page.next_after
        if after is None:
            break
    assert pages == [list(range(7)), list(range(7, 14)), list(range(14, 20))]
    with pytest.raises(ValueError):
        Query(since=datetime(2025, 1, 1))


async def test_schema_check_finds_no_drift_after_upgrade_and_finds_a_stray_column(
    engine: AsyncEngine,
) -> None:
    result = await check_schema(engine)
    assert result.ok and result.current == result.head
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE ledger_checkpoint ADD COLUMN stray INTEGER"))
    result = await check_schema(engine)
    assert not result.ok
    assert any("stray" in d for d in result.differences)


async def test_verify_passes_on_an_intact_log_and_counts_what_it_checked(
    ledger: SqlLedger,
) -> None:
    empty = await ledger.verify(SIGNER)
    assert empty.ok and empty.entries == 0
    await ledger.append([submitted(i) for i in range(23)])
    report = await ledger.verify(SIGNER, chunk=5)
    assert report.ok, report.finding
    assert (report.entries, report.checkpoints) == (23, 2)
    assert report.root == await ledger.tree_head()


async def test_a_revision_drafted_from_a_new_model_creates_its_table(tmp_path: Path) -> None:
    demo = Table("draft_demo", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        paths = await draft_revision("draft demo", directory=tmp_path)
    finally:
        Base.metadata.remove(demo)
    assert len(paths) == 1 and Path(paths[0]).parent == tmp_path
    body = Path(paths[0]).read_text()
    assert f"down_revision = '{head_revision()}'" in body
    assert "op.create_table('draft_demo'" in body
