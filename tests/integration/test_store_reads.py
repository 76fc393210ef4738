"""The reads the writer makes once per batch (``gateway.service.store``), on SQLite and
PostgreSQL: each submission gets exactly its sender's earlier packages, and SQLite finds them
through the unique indexes rather than by walking every package of the senders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from gateway.db.engine import create_engine
from gateway.db.testing import prepare_database
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


async def test_sqlite_finds_earlier_packages_through_the_unique_indexes(tmp_path: Path) -> None:
    url = await prepare_database(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    engine = create_engine(url)
    params = {"senders": [A, B], "digests": ["h1", "h2"], "identities": ["d1"]}
    sql = store._KNOWN_PACKAGES.params(params).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    try:
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        await engine.dispose()
    searches = [step for step in plan if "gw_package" in step]
    assert len(searches) == 2, plan
    assert all(step.startswith("SEARCH") for step in searches), plan
    assert any("(sender=? AND sha256=?)" in step for step in searches), plan
    assert any("(sender=? AND document_identity=?)" in step for step in searches), plan
