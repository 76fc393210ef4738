"""The ledger against plain inserts into the same database, and proof latency on a big log.

1. Appends/s through SqlLedger (canonical bytes, leaf hash, tree nodes, ledger lock, signed
   checkpoints every 1,000 entries), both as explicit batches and as many concurrent single-event
   callers (request handlers) that the group commit batches;
2. plain inserts/s of the very same rows (same sizes, same indexes) into a table of the same
   database, in the same batch sizes;
3. inclusion proof latency for random entries of a log of --proof-entries entries (built through
   SqlLedger.append in large batches), plus the time `ledger verify` takes on it.

    .venv/bin/python bench/bench_ledger.py [--backend sqlite|postgresql|both] [--events 20000]
        [--batch 500] [--callers 256] [--rounds 3] [--proof-entries 1000000]
        [--proof-db sqlite=URL] [--proof-db postgresql=URL] [--database-url URL]

Goals (issue 5): ledger >= 50 % of plain inserts; >= 5,000 events/s on PostgreSQL with batching;
an inclusion proof in < 10 ms on a 1,000,000-entry log. Scratch schemas and files are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, Index, MetaData, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.testing import discard_database, prepare_database
from gateway.ledger.checkpoint import NoteSigner
from gateway.ledger.entry import Event, EventType
from gateway.ledger.merkle import verify_inclusion
from gateway.ledger.models import entry_table
from gateway.ledger.store import SqlLedger

ORIGIN = "bench.local/ledger"
# A fixed key (benchmark only), so a log kept with --proof-db still verifies on the next run.
SIGNER = NoteSigner(
    ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(ORIGIN.encode()).digest())
)
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TYPES = list(EventType)


def event(i: int) -> Event:
    sender = f"000.{i % 89:02d}.{i % 31:02d}.H07"
    return Event(
        TYPES[i % len(TYPES)],
        document=f"{sender}|{sender},2025/01/15,{i}/UBND-VP",
        sender=sender,
        recipient=f"000.{(i * 7) % 89:02d}.{(i * 3) % 31:02d}.H07",
        package_sha256=f"{i:064x}",
        code="03" if i % 9 == 8 else None,
        details={"attempt": i % 5, "profile": "strict"},
    )


def plain_table(metadata: MetaData) -> Table:
    """A table with the ledger's columns and secondary indexes, without any tree work."""
    columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
               for c in entry_table.columns]  # fmt: skip
    table = Table("bench_plain", metadata, *columns)
    for ix in entry_table.indexes:
        Index(f"bench_{ix.name}", *[table.c[c.name] for c in ix.columns])
    return table


async def ledger_batches(ledger: SqlLedger, events: list[Event], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(events), batch):
        await ledger.append(events[i : i + batch])
    return len(events) / (time.perf_counter() - t0)


async def ledger_callers(ledger: SqlLedger, events: list[Event], callers: int) -> float:
    queue = iter(events)

    async def caller() -> None:
        for e in queue:
            await ledger.append([e])

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return len(events) / (time.perf_counter() - t0)


async def plain_inserts(
    engine: AsyncEngine, table: Table, rows: list[dict[str, Any]], batch: int
) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows[i : i + batch])
    return len(rows) / (time.perf_counter() - t0)


async def stored_rows(engine: AsyncEngine, first: int, count: int) -> list[dict[str, Any]]:
    t = entry_table.c
    stmt = select(entry_table).where(t.seq >= first).order_by(t.seq).limit(count)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(stmt)]


async def throughput(
    url: str, events: int, batch: int, callers: int, rounds: int
) -> dict[str, float]:
    """Median over interleaved rounds (the machine is shared; single runs are noisy)."""
    engine = create_engine(url)
    try:
        ledger = SqlLedger(engine, origin=ORIGIN, signer=SIGNER)
        metadata = MetaData()
        table = plain_table(metadata)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await ledger_batches(ledger, [event(i) for i in range(2000)], batch)  # warm up
        warm = await stored_rows(engine, 0, 2000)
        await plain_inserts(engine, table, [{**r, "seq": r["seq"] + 10**12} for r in warm], batch)
        results: dict[str, list[float]] = {"batched": [], "callers": [], "plain": []}
        for _ in range(rounds):
            first = await ledger.size()
            batch_events = [event(i) for i in range(first, first + events)]
            caller_events = [event(i) for i in range(first + events, first + 2 * events)]
            results["batched"].append(await ledger_batches(ledger, batch_events, batch))
            results["callers"].append(await ledger_callers(ledger, caller_events, callers))
            rows = await stored_rows(engine, first, events)
            results["plain"].append(await plain_inserts(engine, table, rows, batch))
        report = await ledger.verify(SIGNER)
        assert report.ok, report.finding
        medians = {k: statistics.median(v) for k, v in results.items()}
        medians["row_bytes"] = statistics.mean(len(r["data"]) for r in warm)
        return medians
    finally:
        await engine.dispose()


async def proof_latency(url: str, entries: int, probes: int) -> dict[str, float]:
    engine = create_engine(url)
    try:
        ledger = SqlLedger(engine, origin=ORIGIN, signer=SIGNER, checkpoint_entries=100_000)
        t0 = time.perf_counter()
        have = await ledger.size()
        step = 5000
        for i in range(have, entries, step):
            await ledger.append([event(j) for j in range(i, min(i + step, entries))])
            if (i // step) % 20 == 0:
                print(f"  building: {i:,} / {entries:,}", flush=True)
        build = time.perf_counter() - t0
        head = await ledger.checkpoint()
        size, root = head.tree_size, head.root_hash
        rng = random.Random(5)
        seqs = [rng.randrange(size) for _ in range(probes)]
        leaves = {s: (await ledger.entry(s)).leaf_hash for s in seqs}
        timings = []
        for s in seqs:
            t = time.perf_counter()
            proof = await ledger.inclusion_proof(s, size)
            timings.append((time.perf_counter() - t) * 1000)
            verify_inclusion(leaves[s], s, size, proof, root)
        t = time.perf_counter()
        receipt_seqs = seqs[:50]
        for s in receipt_seqs:
            await ledger.receipt(s)
        receipt_ms = (time.perf_counter() - t) * 1000 / len(receipt_seqs)
        t = time.perf_counter()
        report = await ledger.verify(SIGNER)
        verify_s = time.perf_counter() - t
        assert report.ok, report.finding
        timings.sort()
        return {
            "entries": size, "build_s": build, "p50_ms": timings[len(timings) // 2],
            "p99_ms": timings[int(len(timings) * 0.99)], "max_ms": timings[-1],
            "receipt_ms": receipt_ms, "verify_s": verify_s,
        }  # fmt: skip
    finally:
        await engine.dispose()


async def report_throughput(base: str, args: argparse.Namespace) -> None:
    url = await prepare_database(base)
    try:
        t = await throughput(url, args.events, args.batch, args.callers, args.rounds)
    finally:
        await discard_database(url)
    print(f"{args.events:,} events per phase, median of {args.rounds} interleaved rounds; "
          f"entry data {t['row_bytes']:.0f} bytes a row")  # fmt: skip
    print(f"ledger, batches of {args.batch:<6}     {t['batched']:>10,.0f} events/s  "
          f"({t['batched'] / t['plain']:.0%} of plain)")  # fmt: skip
    print(f"ledger, {args.callers} callers x 1 event {t['callers']:>9,.0f} events/s  "
          f"({t['callers'] / t['plain']:.0%} of plain)")  # fmt: skip
    print(f"plain inserts, same rows     {t['plain']:>10,.0f} rows/s (batches of {args.batch})")


async def run_backend(name: str, base: str, args: argparse.Namespace) -> None:
    print(f"\n== {name} ==", flush=True)
    if args.events:
        await report_throughput(base, args)
    if args.proof_entries:
        keep = args.proof_db.get(name)
        url = keep or await prepare_database(base.replace("ledger.db", "proof.db"))
        if keep:
            engine = create_engine(keep)
            await upgrade(engine)
            await engine.dispose()
        try:
            p = await proof_latency(url, args.proof_entries, args.probes)
        finally:
            if not keep:
                await discard_database(url)
        print(f"log of {p['entries']:,.0f} entries built in {p['build_s']:.0f} s "
              f"({p['entries'] / p['build_s']:,.0f} events/s)")  # fmt: skip
        print(f"inclusion proof              p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, "
              f"max {p['max_ms']:.2f} ms ({args.probes} random entries)")  # fmt: skip
        print(f"receipt (one entry)          {p['receipt_ms']:.2f} ms")
        print(f"ledger verify (whole log)    {p['verify_s']:.1f} s "
              f"({p['entries'] / p['verify_s']:,.0f} entries/s)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=20_000, help="0: skip the throughput part")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--callers", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--proof-entries",
        type=int,
        default=0,
        help="build a log of this many entries and time proofs (e.g. 1000000)",
    )
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument(
        "--proof-db",
        action="append",
        default=[],
        metavar="BACKEND=URL",
        help="keep the big log in this database and reuse it next time, e.g. "
        "sqlite=sqlite+aiosqlite:////tmp/proof.db (the log is only extended)",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("GATEWAY_TEST_DATABASE_URL", DEFAULT_PG)
    )
    args = parser.parse_args()
    args.proof_db = dict(item.split("=", 1) for item in args.proof_db)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.platform()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            await run_backend("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}", args)
        if args.backend in ("postgresql", "both"):
            await run_backend("postgresql", args.database_url, args)


if __name__ == "__main__":
    asyncio.run(main())
