"""The group-committing writer on SQLite and PostgreSQL: concurrent jobs share transactions,
a job's refusal takes back only its own events, a job that breaks its transaction fails alone,
nothing is answered before it is committed, and independent jobs' rows are written together,
readable by every later job that needs them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    text,
)

from gateway.db.engine import create_engine
from gateway.db.testing import discard_database, prepare_database
from gateway.errors import GatewayError
from gateway.ledger import Event, EventType, NoteSigner, SqlLedger
from gateway.service.writer import Batch, Writer

ORIGIN = "gateway.test/writer"
A = "000.00.05.H07"


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[SqlLedger]:
    engine = create_engine(db_url)
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    yield SqlLedger(engine, origin=ORIGIN, signer=signer, checkpoint_entries=50)
    await engine.dispose()


def submitted(n: int) -> Event:
    return Event(EventType.SUBMITTED, document=f"{A}|doc-{n}", sender=A)


def appending(n: int):  # type: ignore[no-untyped-def]
    async def job(batch: Batch) -> int:
        (seq,) = batch.append([submitted(n)])
        return seq

    return job


async def test_concurrent_jobs_share_transactions_and_get_consecutive_entries(
    ledger: SqlLedger,
) -> None:
    writer = Writer(ledger)
    seqs = await asyncio.gather(*(writer.run(appending(n)) for n in range(200)))
    assert sorted(seqs) == list(range(200))
    assert writer.jobs == 200
    assert writer.batches < 20  # shared: one transaction per batch, not per job
    report = await ledger.verify(ledger.verifier)
    assert report.ok and report.entries == 200


async def test_a_refusal_takes_back_only_its_own_events(ledger: SqlLedger) -> None:
    writer = Writer(ledger)

    async def refused(batch: Batch) -> None:
        batch.append([submitted(99), submitted(100)])
        raise GatewayError("duplicate_conflict", "no")

    results = await asyncio.gather(
        writer.run(appending(0)), writer.run(refused), writer.run(appending(1)),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == 0 and results[2] == 1
    assert isinstance(results[1], GatewayError) and results[1].code == "duplicate_conflict"
    assert writer.batches == 1
    assert await ledger.size() == 2
    assert (await ledger.verify(ledger.verifier)).ok


async def test_a_job_that_breaks_the_transaction_fails_alone(ledger: SqlLedger) -> None:
    writer = Writer(ledger)

    async def broken(batch: Batch) -> None:
        await batch.conn.execute(text("SELECT * FROM no_such_table"))

    results = await asyncio.gather(
        writer.run(appending(0)), writer.run(broken), writer.run(appending(1)),
        return_exceptions=True,
    )  # fmt: skip
    assert sorted(r for r in results if isinstance(r, int)) == [0, 1]
    assert not isinstance(results[1], int | GatewayError)  # the database's own error
    assert await ledger.size() == 2
    assert (await ledger.verify(ledger.verifier)).ok


async def test_an_answer_means_committed(ledger: SqlLedger) -> None:
    writer = Writer(ledger)
    seq = await writer.run(appending(0))
    async with ledger.engine.connect() as conn:  # another connection sees it at once
        query = text("SELECT count(*) FROM ledger_entry WHERE seq = :s")
        found = await conn.scalar(query, {"s": seq})
    assert found == 1


async def test_after_commit_work_runs_only_after_the_commit(ledger: SqlLedger) -> None:
    writer = Writer(ledger)
    seen: list[int] = []

    async def job(batch: Batch) -> None:
        batch.append([submitted(0)])
        batch.after_commit.append(lambda: seen.append(1))
        assert seen == []

    await writer.run(job)
    assert seen == [1]


async def test_jobs_that_come_while_another_process_holds_the_ledger_join_the_waiting_batch(
    database_url: str,
) -> None:
    """PostgreSQL, where several processes append: the writer takes its jobs once it holds the
    ledger lock, so those that came while it waited for the lock share its transaction."""
    scoped = await prepare_database(database_url)
    engine, other_engine = create_engine(scoped), create_engine(scoped)
    try:
        ledger = SqlLedger(engine, origin=ORIGIN)
        writer = Writer(ledger)
        async with SqlLedger(other_engine, origin=ORIGIN).transaction() as other:
            first = asyncio.create_task(writer.run(appending(0)))
            waiting = text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            while not await other.scalar(waiting):  # the writer waits for the lock
                await asyncio.sleep(0.01)
            later = [asyncio.create_task(writer.run(appending(n))) for n in range(1, 10)]
            await asyncio.sleep(0)  # handed in while the lock is held
        seqs = await asyncio.gather(first, *later)
        assert sorted(seqs) == list(range(10))
        assert writer.batches == 1
    finally:
        await engine.dispose()
        await other_engine.dispose()
        await discard_database(scoped)


# -- independent jobs: rows written together ------------------------------------------------

rows_table = Table(
    "writer_rows", MetaData(), Column("k", String, primary_key=True), Column("v", Integer)
)


INSERT_ROW = insert(rows_table)  # one statement object: Batch.write gathers rows by statement


@pytest.fixture
async def rows(ledger: SqlLedger) -> AsyncIterator[list[str]]:
    """The scratch table's inserts as the database received them (one string per statement)."""
    async with ledger.engine.begin() as conn:
        await conn.run_sync(rows_table.metadata.create_all)
    statements: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO writer_rows"):
            statements.append(statement)

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", seen)
    yield statements
    event.remove(ledger.engine.sync_engine, "before_cursor_execute", seen)


def inserting(key: str):  # type: ignore[no-untyped-def]
    async def job(batch: Batch) -> int:
        (seq,) = batch.append([submitted(int(key))])
        await batch.write(INSERT_ROW, [{"k": key, "v": 1}], keys=[key])
        return seq

    return job


async def count(conn, key: str | None = None) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(rows_table)
    if key is not None:
        query = query.where(rows_table.c.k == key)
    return int(await conn.scalar(query))


async def test_independent_jobs_write_their_rows_in_one_statement_per_batch(
    ledger: SqlLedger, rows: list[str]
) -> None:
    writer = Writer(ledger)
    await asyncio.gather(*(writer.run(inserting(str(n)), independent=True) for n in range(100)))
    assert len(rows) == writer.batches < 20  # one insert per batch, of many rows
    async with ledger.engine.connect() as conn:
        assert await count(conn) == 100
    assert await ledger.size() == 100


async def test_a_job_reads_what_earlier_jobs_of_its_batch_left_waiting(
    ledger: SqlLedger, rows: list[str]
) -> None:
    writer = Writer(ledger)

    async def dependent(batch: Batch) -> int:  # not independent: the waiting rows go first
        return await count(batch.conn)

    async def checking(batch: Batch) -> int:  # independent, but asks for key 1 first
        await batch.fresh("1")
        return await count(batch.conn, "1")

    results = await asyncio.gather(
        writer.run(inserting("0"), independent=True),
        writer.run(dependent),
        writer.run(inserting("1"), independent=True),
        writer.run(checking, independent=True),
    )
    assert writer.batches == 1
    assert results[1] == 1 and results[3] == 1
    assert len(rows) == 2  # key 0 before the dependent job, key 1 before the check


async def test_a_refused_independent_job_leaves_no_rows(ledger: SqlLedger, rows: list[str]) -> None:
    writer = Writer(ledger)

    async def refused(batch: Batch) -> None:
        await batch.write(INSERT_ROW, [{"k": "9", "v": 9}])
        raise GatewayError("duplicate_conflict", "no")

    results = await asyncio.gather(
        writer.run(inserting("0"), independent=True),
        writer.run(refused, independent=True),
        writer.run(inserting("1"), independent=True),
        return_exceptions=True,
    )
    assert isinstance(results[1], GatewayError)
    async with ledger.engine.connect() as conn:
        assert await count(conn) == 2 and await count(conn, "9") == 0


async def test_twins_in_one_batch_fail_alone_when_their_rows_are_written(
    ledger: SqlLedger,
) -> None:
    async with ledger.engine.begin() as conn:
        await conn.run_sync(rows_table.metadata.create_all)
    writer = Writer(ledger)
    results = await asyncio.gather(
        writer.run(inserting("0"), independent=True),
        writer.run(inserting("7"), independent=True),
        writer.run(inserting("7"), independent=True),  # the same key: the batch cannot commit
        writer.run(inserting("1"), independent=True),
        return_exceptions=True,
    )
    # Run again one by one, only the second twin fails (on the database's constraint).
    assert [isinstance(r, int) for r in results] == [True, True, False, True]
    async with ledger.engine.connect() as conn:
        assert await count(conn) == 3
    assert await ledger.size() == 3
    assert (await ledger.verify(ledger.verifier)).ok


# -- independent jobs: their first reads made once per batch ---------------------------------

READ_ROWS = select(rows_table).where(rows_table.c.k.in_(bindparam("keys", expanding=True)))
lookups: list[list[str]] = []  # the keys of each call of the lookup below


async def values_of(conn, keys):  # type: ignore[no-untyped-def]
    """A Lookup: each key's value in the scratch table."""
    lookups.append(sorted(keys))
    return {r.k: r.v for r in await conn.execute(READ_ROWS, {"keys": list(keys)})}


def reading(key: str):  # type: ignore[no-untyped-def]
    async def job(batch: Batch) -> int | None:
        value: int | None = await batch.look_up(values_of, key)
        return value

    return job


async def test_the_jobs_of_a_batch_have_their_first_reads_made_in_one_statement(
    ledger: SqlLedger, rows: list[str]
) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(insert(rows_table), [{"k": str(n), "v": n} for n in range(0, 40, 2)])
    lookups.clear()
    writer = Writer(ledger)
    found = await asyncio.gather(
        *(
            writer.run(reading(str(n)), independent=True, reads=(values_of, str(n)))
            for n in range(40)
        )
    )
    assert found == [n if n % 2 == 0 else None for n in range(40)]
    assert len(lookups) == writer.batches < 20  # one read per batch, of many keys
    assert sorted(k for keys in lookups for k in keys) == sorted(str(n) for n in range(40))


async def test_what_a_batch_wrote_is_read_again_rather_than_read_ahead(
    ledger: SqlLedger, rows: list[str]
) -> None:
    """A read made ahead sees the database as the batch began: once a job of the batch has
    written (a dependent job, or an independent job's waiting rows made readable), the jobs
    after it read for themselves."""
    lookups.clear()
    writer = Writer(ledger)

    async def dependent(batch: Batch) -> None:  # writes at once
        await batch.write(INSERT_ROW, [{"k": "5", "v": 50}])

    async def fresh_reading(batch: Batch) -> int | None:  # after an earlier job's key 6
        await batch.fresh("6")
        value: int | None = await batch.look_up(values_of, "6")
        return value

    results = await asyncio.gather(
        writer.run(reading("5"), independent=True, reads=(values_of, "5")),
        writer.run(dependent),
        writer.run(reading("5"), independent=True, reads=(values_of, "5")),
        writer.run(inserting("6"), independent=True),
        writer.run(fresh_reading, independent=True, reads=(values_of, "6")),
    )
    assert writer.batches == 1
    assert results[0] is None  # read ahead, before the batch wrote key 5
    assert results[2] == 50  # read after it
    assert results[4] == 1  # key 6, written by the job before it in the same batch
    assert lookups[0] == ["5", "5", "6"] and len(lookups) == 3


async def test_a_key_not_read_ahead_is_read_when_asked(ledger: SqlLedger, rows: list[str]) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(insert(rows_table), [{"k": "1", "v": 1}, {"k": "3", "v": 3}])
    lookups.clear()
    writer = Writer(ledger)
    results = await asyncio.gather(
        writer.run(reading("1"), independent=True, reads=(values_of, "1")),
        writer.run(reading("3"), independent=True),  # did not say what it reads
    )
    assert writer.batches == 1
    assert results == [1, 3]
    assert lookups == [["1"], ["3"]]


async def test_unlocked_waits_while_a_transaction_holds_the_lock(ledger: SqlLedger) -> None:
    """What would keep the event loop busy (verifying a letter) waits for ``unlocked``: it
    returns at once while the writer is idle, and while a batch holds the ledger's lock only
    once that batch has committed, or failed."""
    writer = Writer(ledger)
    await asyncio.wait_for(writer.unlocked(), 1)  # idle: at once
    inside, release = asyncio.Event(), asyncio.Event()

    async def holding(batch: Batch) -> int:
        inside.set()
        await release.wait()
        (seq,) = batch.append([submitted(0)])
        return seq

    job = asyncio.create_task(writer.run(holding))
    await inside.wait()
    waiting = asyncio.create_task(writer.unlocked())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the batch holds the lock
    release.set()
    await asyncio.wait_for(waiting, 5)
    assert await ledger.size() == 1  # committed by the time it returned
    assert await job == 0

    async def broken(batch: Batch) -> None:
        inside.set()
        await release.wait()
        raise RuntimeError("the transaction breaks")

    inside.clear()
    release.clear()
    failing = asyncio.create_task(writer.run(broken))
    await inside.wait()
    waiting = asyncio.create_task(writer.unlocked())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    release.set()
    with pytest.raises(RuntimeError, match="breaks"):
        await failing
    await asyncio.wait_for(waiting, 5)  # a failed batch lets go too


async def test_a_batch_is_answered_before_the_work_that_waited_for_the_lock_resumes(
    ledger: SqlLedger,
) -> None:
    """Letters that came in while a batch held the lock wait for ``unlocked`` to be verified;
    when the batch commits, its callers get their answers first, so that an answer does not
    also wait for the next letters' verification."""
    writer = Writer(ledger)
    inside, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def holding(batch: Batch) -> int:
        inside.set()
        await release.wait()
        (seq,) = batch.append([submitted(0)])
        return seq

    async def caller() -> None:
        await writer.run(holding)
        order.append("answered")

    async def gated(name: str) -> None:
        await writer.unlocked()
        order.append(f"resumed {name}")

    answered = asyncio.create_task(caller())
    await inside.wait()
    waiting = [asyncio.create_task(gated(n)) for n in ("x", "y")]
    await asyncio.sleep(0.1)
    assert order == []
    release.set()
    await asyncio.wait_for(asyncio.gather(answered, *waiting), 5)
    assert order == ["answered", "resumed x", "resumed y"]
