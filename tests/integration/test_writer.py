"""The group-committing writer on SQLite and PostgreSQL: concurrent jobs share transactions,
a job's refusal takes back only its own events, a job that breaks its transaction fails alone,
and nothing is answered before it is committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from gateway.db.engine import create_engine
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
