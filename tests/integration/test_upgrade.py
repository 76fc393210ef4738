"""A database written at revision 0002 (packages held in their rows) upgrades to the newest
schema without losing anything: its ledger verifies, its inbox copies are served with their
bytes, and packages stored after the upgrade may live in the package store. On PostgreSQL the
bytes of packages stored before keep their compressed form and new ones are stored as they
are."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from gateway.bus import ClaimStore, RetryPolicy
from gateway.db.engine import create_engine, write_transaction
from gateway.db.migrate import current_revision, head_revision, upgrade
from gateway.db.testing import create_scratch_schema, drop_scratch_schema
from gateway.db.wakeups import Wakeups
from gateway.ledger import Event, EventType, NoteSigner, SqlLedger
from gateway.ledger.append import Appender
from gateway.ledger.merkle import CompactRange
from gateway.service.inbox import Inboxes
from gateway.service.tokens import Principal, Role
from gateway.service.writer import Writer

ORIGIN = "gateway.test/upgrade"
SENDER, RECIPIENT = "000.00.05.H07", "000.00.06.H07"
RAW = b"<edXML>" + b"x" * 5000 + b"</edXML>"


INSERT_PACKAGE = text(
    "INSERT INTO gw_package (package_id, kind, sender, document_id, document_key, sha256, "
    "signature_state, priority, size, raw, answer, submitted_at, ledger_seq, document_identity) "
    "VALUES (:p, 'document', :s, :d, :k, :h, 'valid', 0, :n, :raw, '{}', :t, 0, :d)"
)


def package(package_id: str, key: str, now: dt.datetime) -> dict[str, object]:
    """The bind values of a package row as revision 0002 held it (its bytes in the row)."""
    return {"p": package_id, "s": SENDER, "d": key.split("|")[1], "k": key, "h": package_id,
            "n": len(RAW), "raw": RAW, "t": now}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
async def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    scoped = await create_scratch_schema(request.getfixturevalue("database_url"))
    yield scoped
    await drop_scratch_schema(scoped)


async def test_a_revision_0002_database_upgrades_without_loss(old_url: str, tmp_path: Path) -> None:
    engine = create_engine(old_url)
    try:
        await upgrade(engine, "0002_service")
        signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        ledger = SqlLedger(engine, origin=ORIGIN, signer=signer, checkpoint_entries=2)
        key = f"{SENDER}|{SENDER},2026/12/01,1/CV"
        async with write_transaction(engine) as conn:  # appended as revision 0002 could
            appender = Appender(ledger, CompactRange(0, []), None, None, None)
            appender.add(
                [
                    Event(EventType.SUBMITTED, document=key, sender=SENDER),
                    Event(EventType.QUEUED, document=key, sender=SENDER, recipient=RECIPIENT),
                ]
            )
            await appender.flush(conn)
        now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
        async with engine.begin() as conn:  # the rows as revision 0002 held them
            await conn.execute(INSERT_PACKAGE, package("p-1", key, now))
            await conn.execute(
                text(
                    "INSERT INTO gw_inbox (delivery_id, recipient, package_id, state, attempt, "
                    "queued_at, expires_at) VALUES ('d-1-0', :r, 'p-1', 'ready', 1, :t, :e)"
                ),
                {"r": RECIPIENT, "t": now, "e": now + dt.timedelta(days=1)},
            )

        await upgrade(engine)

        assert await current_revision(engine) == head_revision()
        report = await ledger.verify(ledger.verifier)
        assert report.ok and report.entries == 2
        inboxes = Inboxes(
            Writer(ledger),
            engine,
            RetryPolicy.of_seconds([1], 60),
            ClaimStore(tmp_path / "p"),
            Wakeups(engine),
        )
        copy = await inboxes.item(Principal("t", RECIPIENT, Role.UNIT), "d-1-0")
        assert (copy.recipient, copy.body) == (RECIPIENT, RAW)
        page = await inboxes.page(RECIPIENT)
        assert [e.delivery_id for e in page.entries] == ["d-1-0"]
        if engine.dialect.name == "postgresql":  # a new package's bytes are stored as they are
            async with engine.begin() as conn:
                await conn.execute(INSERT_PACKAGE, package("p-2", f"{key}-2", now))
                query = "SELECT package_id, pg_column_compression(raw) FROM gw_package"
                forms = {p: form for p, form in await conn.execute(text(query))}
            assert forms == {"p-1": "pglz", "p-2": None}
    finally:
        await engine.dispose()
