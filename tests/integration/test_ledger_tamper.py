"""Tampering with the ledger directly in SQL (as someone with database rights would, after
dropping the append-only triggers) makes `gateway ledger verify` fail and name the place.
Run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.cli import main
from gateway.db.engine import create_engine
from gateway.db.testing import discard_database, prepare_database
from gateway.ledger.checkpoint import NoteSigner
from gateway.ledger.entry import Event, EventType, parse_entry
from gateway.ledger.merkle import CompactRange, leaf_hash
from gateway.ledger.models import checkpoint_table, entry_table
from gateway.ledger.store import SqlLedger

ORIGIN = "gateway.local/ledger"  # the default GATEWAY_LEDGER_ORIGIN
A, B = "000.00.05.H07", "000.01.05.H07"
Tamper = Callable[[AsyncConnection], Coroutine[Any, Any, None]]


def write_keys(folder: Path, key: Ed25519PrivateKey) -> None:
    (folder / "gateway").mkdir(parents=True)
    (folder / "gateway" / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def populate(url: str, key: Ed25519PrivateKey) -> None:
    """40 entries appended one by one; checkpoints at sizes 1, 11, 21, 31 and 40."""
    engine = create_engine(url)
    t = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
    try:
        ledger = SqlLedger(
            engine, origin=ORIGIN, signer=NoteSigner(ORIGIN, key), checkpoint_entries=10,
            clock=lambda: t,
        )  # fmt: skip
        for i in range(40):
            document = f"{A}|{A},2025/01/15,{i // 2}/UBND"
            kind = EventType.SUBMITTED if i % 2 == 0 else EventType.DELIVERED
            await ledger.append([Event(kind, document=document, sender=A, recipient=B)])
        await ledger.checkpoint()
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        base = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        base = request.getfixturevalue("database_url")
    url = asyncio.run(prepare_database(base))
    key = Ed25519PrivateKey.generate()
    write_keys(tmp_path / "keys", key)
    try:
        asyncio.run(populate(url, key))
        yield {
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_KEYS": str(tmp_path / "keys"),
            "GATEWAY_HOME": str(tmp_path / "var"),
        }
    finally:
        asyncio.run(discard_database(url))


def tamper_with(url: str, change: Tamper) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await drop_append_only_triggers(conn)
                await change(conn)
        finally:
            await engine.dispose()

    asyncio.run(run())


async def drop_append_only_triggers(conn: AsyncConnection) -> None:
    for table in ("ledger_entry", "ledger_checkpoint"):
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
        else:
            for action in ("update", "delete"):
                await conn.execute(text(f"DROP TRIGGER {table}_no_{action}"))


async def rows(conn: AsyncConnection, where: Any = None) -> list[dict[str, Any]]:
    stmt = select(entry_table).order_by(entry_table.c.seq)
    if where is not None:
        stmt = stmt.where(where)
    return [dict(r._mapping) for r in await conn.execute(stmt)]


def reencode(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The row with its entry bytes (and matching columns) changed, still canonical."""
    obj = dict(json.loads(row["data"]), **changes)
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    parse_entry(data)
    return {**row, **{k: v for k, v in changes.items() if k in row}, "data": data}


async def rewrite(conn: AsyncConnection, new_rows: list[dict[str, Any]]) -> None:
    first = min(r["seq"] for r in new_rows)
    await conn.execute(delete(entry_table).where(entry_table.c.seq >= first))
    await conn.execute(insert(entry_table), new_rows)


def recompute_hashes(all_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tree = CompactRange()
    out = []
    for r in all_rows:
        leaf = leaf_hash(r["data"])
        nodes = b"".join(h for _, h in tree.append(leaf))
        out.append({**r, "leaf_hash": leaf, "nodes": nodes})
    return out


async def alter_column(conn: AsyncConnection) -> None:
    await conn.execute(
        update(entry_table).where(entry_table.c.seq == 17).values(recipient="000.09.05.H07")
    )


async def alter_entry_bytes(conn: AsyncConnection) -> None:
    row = (await rows(conn, entry_table.c.seq == 17))[0]
    changed = reencode(row, recipient="000.09.05.H07")
    await conn.execute(
        update(entry_table)
        .where(entry_table.c.seq == 17)
        .values(data=changed["data"], recipient="000.09.05.H07")
    )


async def rewrite_history_with_recomputed_hashes(conn: AsyncConnection) -> None:
    all_rows = await rows(conn)
    all_rows[17] = reencode(all_rows[17], recipient="000.09.05.H07")
    await rewrite(conn, recompute_hashes(all_rows)[17:])


async def delete_a_row(conn: AsyncConnection) -> None:
    await conn.execute(delete(entry_table).where(entry_table.c.seq == 17))


async def delete_the_newest_rows(conn: AsyncConnection) -> None:
    await conn.execute(delete(entry_table).where(entry_table.c.seq >= 35))


async def insert_a_row(conn: AsyncConnection) -> None:
    all_rows = await rows(conn)
    forged = reencode(all_rows[16], seq=17, recipient="000.09.05.H07")
    shifted = [{**r, "seq": r["seq"] + 1} for r in all_rows[17:]]
    # A careful forger also gives the forged row the right leaf and tree hashes.
    hashed = recompute_hashes([*all_rows[:17], forged])[17]
    await rewrite(conn, [hashed, *shifted])


async def swap_two_rows(conn: AsyncConnection) -> None:
    all_rows = await rows(conn)
    a, b = all_rows[17], all_rows[18]
    await rewrite(conn, [{**b, "seq": 17}, {**a, "seq": 18}, *all_rows[19:]])


async def alter_a_checkpoint(conn: AsyncConnection) -> None:
    await conn.execute(
        update(checkpoint_table).where(checkpoint_table.c.id == 3).values(root_hash=b"\x00" * 32)
    )


async def forge_a_checkpoint(conn: AsyncConnection) -> None:
    row = (await conn.execute(select(checkpoint_table).where(checkpoint_table.c.id == 3))).one()
    text_part = row.note.split("\n\n")[0] + "\n"
    forged = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).sign(text_part)
    await conn.execute(
        update(checkpoint_table).where(checkpoint_table.c.id == 3).values(note=forged)
    )


CASES: dict[str, tuple[Tamper, str]] = {
    "alter a column": (alter_column, "CORRUPT seq 17: column recipient is '000.09.05.H07'"),
    "alter the entry bytes": (alter_entry_bytes, "CORRUPT seq 17: the stored leaf hash"),
    "rewrite history with recomputed hashes": (
        rewrite_history_with_recomputed_hashes,
        "CORRUPT seq 11: the entries from seq 11 to 20 do not match checkpoint #3 (size 21",
    ),
    "delete a row": (delete_a_row, "CORRUPT seq 17: entry missing"),
    "delete the newest rows": (
        delete_the_newest_rows,
        "CORRUPT seq 35: checkpoint #5 covers 40 entries but the log has 35",
    ),
    "insert a row": (
        insert_a_row,
        "CORRUPT seq 18: the entry bytes say seq 17: a row was inserted before it",
    ),
    "swap two rows": (
        swap_two_rows,
        "CORRUPT seq 17: the entry bytes say seq 18: rows were swapped",
    ),
    "alter a checkpoint": (alter_a_checkpoint, "checkpoint #3 (size 21"),
    "forge a checkpoint signature": (
        forge_a_checkpoint,
        "no signature by key gateway.local/ledger",
    ),
}


def verify(env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ledger", "verify"], env=env)
    return result.exit_code, result.stdout  # the verdict; progress goes to standard error


def test_an_untouched_ledger_verifies(env: dict[str, str]) -> None:
    code, output = verify(env)
    assert code == 0, output
    assert output.startswith("OK ledger verified: 40 entries, 5 checkpoints (signatures checked")


@pytest.mark.parametrize("case", CASES.keys())
def test_tampering_fails_verification_and_names_the_place(env: dict[str, str], case: str) -> None:
    change, expected = CASES[case]
    tamper_with(env["GATEWAY_DATABASE_URL"], change)
    code, output = verify(env)
    assert code == 1, output
    assert expected in output
