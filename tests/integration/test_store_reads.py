"""The reads the writer makes once per batch (``gateway.service.store``), on SQLite and
PostgreSQL: each submission gets exactly its sender's earlier packages, found through the
unique indexes rather than by walking every package."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, insert

from gateway.db.engine import create_engine
from gateway.service import store
from gateway.service.models import package_table

A, B = "000.00.05.H07", "000.00.06.H07"


def package(n: int, sender: str, sha256: str, identity: str) -> dict[str, object]:
    return {
        "package_id": f"p{n}",
        "kind": "document",
        "sender": sender,
        "document_id": identity,
        "document_key": f"{sender}|{identity}",
        "sha256": sha256,
        "priority": 0,
        "signature_state": "valid",
        "size": 1,
        "raw": b"x",
        "answer": f'{{"n": {n}}}',
        "submitted_at": datetime.now(UTC),
        "ledger_seq": n,
        "document_identity": identity,
    }


async def test_each_submission_gets_its_own_senders_earlier_packages(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(package_table),
                [
                    package(1, A, "h1", "d1"),
                    package(2, A, "h2", "d2"),
                    package(3, B, "h3", "d1"),  # B's d1: not A's
                ],
            )
        keys = [
            (A, "h1", ("d1",)),  # the same bytes and DocumentId: one package, found once
            (A, "h9", ("d2",)),  # other bytes, a DocumentId A used
            (B, "h1", ("d9",)),  # A's bytes from B: nothing of B's
            (A, "h9", ("d9", "d1")),  # an update naming A's d1
        ]
        async with engine.connect() as conn:
            found = await store.known_packages(conn, keys)
        ids = {key: [k.package_id for k in known] for key, known in found.items()}
        assert ids == {keys[0]: ["p1"], keys[1]: ["p2"], keys[2]: [], keys[3]: ["p1"]}
    finally:
        await engine.dispose()


async def test_earlier_packages_are_found_through_the_unique_indexes(db_url: str) -> None:
    """A batch's lookup probes the unique indexes: it never reads every package (it runs
    under the ledger's lock, and the table only grows)."""
    senders = [f"000.{n:02d}.05.H07" for n in range(16)]
    engine = create_engine(db_url)
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement: str, parameters: object, *_args) -> None:  # type: ignore[no-untyped-def]
        if "gw_package" in statement:
            sent.append((statement, parameters))

    try:
        async with engine.begin() as conn:
            rows = [package(n, senders[n % 16], f"h{n}", f"d{n}") for n in range(4000)]
            await conn.execute(insert(package_table), rows)
            await conn.exec_driver_sql("ANALYZE")
        keys = [(senders[n], f"h{9000 + n}", (f"d{9000 + n}",)) for n in range(12)]
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        async with engine.connect() as conn:
            assert await store.known_packages(conn, keys) == {key: [] for key in keys}
            ((statement, parameters),) = sent
            explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
            result = await conn.exec_driver_sql(f"{explain} {statement}", parameters)  # type: ignore[arg-type]
            plan = [str(row[-1]) for row in result]
    finally:
        await engine.dispose()
    if engine.dialect.name == "postgresql":
        assert not any("Seq Scan" in step for step in plan), plan
        assert any("Index Scan on uq_gw_package_sender_sha256" in step for step in plan), plan
    else:
        searches = [step for step in plan if "gw_package" in step]
        assert len(searches) == 2, plan
        assert all(step.startswith("SEARCH") for step in searches), plan
        assert any("(sender=? AND sha256=?)" in step for step in searches), plan
