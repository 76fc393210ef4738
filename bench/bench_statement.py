"""What one statement costs the gateway's process: SQLAlchemy Core on the gateway's engine
against asyncpg's prepared statement on the same connection, the same insert into the same
table, in alternating rounds. Client CPU only (the database's is the same for both).

    .venv/bin/python bench/bench_statement.py [--database-url URL] [--statements 3000]
        [--rounds 3]

A write transaction makes about nine statements (``docs/performance.md``): at a light load
each carries one or two letters, so this cost is paid nearly per letter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert

from gateway.db.engine import create_engine

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BODY = os.urandom(300)  # about a ledger entry


async def cpu_per_call(call: Callable[[int], Awaitable[object]], count: int) -> float:
    """Microseconds of this process's CPU per awaited call."""
    started = time.process_time()
    for i in range(count):
        await call(i)
    return (time.process_time() - started) * 1e6 / count


async def main(url: str, count: int, rounds: int) -> None:
    table = Table(
        f"bench_statement_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("k", Integer),
        Column("body", LargeBinary),
    )
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(table.metadata.create_all)
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            sql = f"INSERT INTO {table.name} (k, body) VALUES ($1, $2)"
            prepared = await raw.prepare(sql)
            statement = insert(table)

            def rows(i: int) -> list[dict[str, object]]:
                return [{"k": i, "body": BODY} for _ in range(10)]

            ways: dict[str, Callable[[int], Awaitable[object]]] = {
                "SQLAlchemy, one row": lambda i: conn.execute(statement, {"k": i, "body": BODY}),
                "asyncpg, one row": lambda i: prepared.fetch(i, BODY),
                "SQLAlchemy, executemany of 10": lambda i: conn.execute(statement, rows(i)),
                "asyncpg, executemany of 10": lambda i: raw.executemany(sql, [(i, BODY)] * 10),
            }
            best = dict.fromkeys(ways, float("inf"))
            for way in ways.values():
                await cpu_per_call(way, 100)  # statement caches warm
            for _ in range(rounds):
                for name, way in ways.items():
                    best[name] = min(best[name], await cpu_per_call(way, count))
            await conn.rollback()
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.drop_all)
        await engine.dispose()
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name, micros in best.items():
        print(f"{name}: {micros:,.0f} µs of client CPU a statement (best of {rounds})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.statements, args.rounds))
