"""What each request of the API costs the gateway: CPU of a ``gateway serve`` process (and of
the database's processes) per request, one kind of request at a time, beside a request that
touches nothing (``GET /healthz``) and one that only checks its token (``GET /v1/units/CODE``).
A full cycle of ``gateway bench`` is a submission, a fetch, and its share of a listing and of
an acknowledgement; this says which of them the gateway's time goes to.

    .venv/bin/python bench/bench_requests.py [--letters 2000] [--workers 1]
        [--amqp amqp://guest:guest@127.0.0.1:5672/ --db postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Letters are submitted from 16 connections at once, then every copy is listed, fetched and
acknowledged the same way, each kind of request a phase of its own; the acknowledgements of a
second round of letters go in pages of 25 (``POST /v1/inbox/ack``). The client runs in this
process, which is not counted; it shares the machine's cores with the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.bench.procstat import pids_named, total_cpu_seconds, with_children
from gateway.bench.run import (
    SIZES,
    BenchOptions,
    make_packages,
    pull_units,
    run_tokens,
    started_gateway,
)
from gateway.directory import load_directory
from gateway.trust import init_keys

CONNECTIONS = 16
PAGE = 100  # a listing's page
ACK_PAGE = 25  # acknowledgements in one request


async def each(items: list[Any], call: Callable[..., Awaitable[None]]) -> None:
    """``call(*item)`` for every item, from CONNECTIONS callers at once."""
    left = list(reversed(items))

    async def caller() -> None:
        while left:
            await call(*left.pop())

    await asyncio.gather(*(caller() for _ in range(CONNECTIONS)))


async def main(args: argparse.Namespace) -> None:
    options = BenchOptions(
        packages=args.letters, workers=args.workers, amqp_url=args.amqp, database_url=args.db
    )
    directory = load_directory()
    senders, recipients = pull_units(directory, 16)
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
        folder = Path(tmp)
        init_keys(folder / "keys", directory)
        print(f"signing {2 * args.letters} letters of about 8k", flush=True)
        letters = make_packages(
            folder / "keys", directory, senders, recipients, 2 * args.letters, SIZES["8k"]
        )
        async with (
            started_gateway(folder, options, print) as g,
            run_tokens(g.database_url, senders + recipients) as tokens,
        ):
            url, pid = g.url, g.pid
            assert pid is not None  # a gateway of its own
            database = (lambda: pids_named("postgres")) if args.db else list
            await measure_all(url, tokens, recipients, letters, pid, database)


async def measure_all(
    url: str,
    tokens: dict[str, str],
    recipients: list[str],
    letters: list[tuple[str, bytes]],
    pid: int,
    database: Callable[[], list[int]],
) -> None:
    connector = aiohttp.TCPConnector(limit=2 * CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        def auth(unit: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[unit]}"}

        async def ask(method: str, path: str, unit: str | None, **kwargs: Any) -> Any:
            headers = {**(auth(unit) if unit else {}), **kwargs.pop("headers", {})}
            async with session.request(method, url + path, headers=headers, **kwargs) as r:
                if r.status not in (200, 202):
                    raise RuntimeError(f"{method} {path}: {r.status} {await r.text()}")
                return await r.read()

        async def submit(sender: str, data: bytes) -> None:
            headers = {"Content-Type": "application/xml"}
            await ask("POST", "/v1/packages", sender, data=data, headers=headers)

        async def copies() -> list[tuple[str, str]]:
            found = []
            for unit in recipients:
                after = "0"
                while after is not None:
                    path = f"{url}/v1/inbox?limit=500&after={after}"
                    async with session.get(path, headers=auth(unit)) as r:
                        page = await r.json()
                    found += [(unit, i["delivery_id"]) for i in page["items"]]
                    after = page["next"]
            return found

        async def phase(
            name: str, items: list[Any], call: Callable[..., Awaitable[Any]], per: int = 0
        ) -> None:
            """CPU per item (per ``per`` things done, when given), and items a second."""
            gateway, db = with_children(pid), database()
            before = total_cpu_seconds(gateway), total_cpu_seconds(db), time.perf_counter()
            await each(items, call)
            spent = total_cpu_seconds(gateway) - before[0], total_cpu_seconds(db) - before[1]
            rate = len(items) / (time.perf_counter() - before[2])
            done = per or len(items)
            print(
                f"{name:44} {done:6}  gateway {1000 * spent[0] / done:6.3f} ms"
                f"  database {1000 * spent[1] / done:6.3f} ms  {rate:7,.0f} requests/s",
                flush=True,
            )

        half = len(letters) // 2
        print("CPU per request (per copy for the acknowledgements in pages):")
        await phase("GET /healthz", [()] * half, lambda: ask("GET", "/healthz", None))
        units = [(u,) for u in recipients] * (half // len(recipients))
        await phase("GET /v1/units/CODE", units, lambda u: ask("GET", f"/v1/units/{u}", u))
        for first, acknowledge in ((True, "one"), (False, "pages")):
            await phase("POST /v1/packages", letters[:half] if first else letters[half:], submit)
            waiting = await copies()
            pages = [(u,) for u in recipients] * (len(waiting) // len(recipients))
            await phase(
                f"GET /v1/inbox?limit={PAGE} ({min(PAGE, len(waiting) // len(recipients))} each)",
                pages,
                lambda u: ask("GET", f"/v1/inbox?limit={PAGE}", u),
            )
            await phase("GET /v1/inbox/ID", waiting, lambda u, d: ask("GET", f"/v1/inbox/{d}", u))
            if acknowledge == "one":
                await phase(
                    "POST /v1/inbox/ID/ack",
                    waiting,
                    lambda u, d: ask("POST", f"/v1/inbox/{d}/ack", u, json={"result": "done"}),
                )
            else:
                by_unit: dict[str, list[str]] = {}
                for unit, delivery in waiting:
                    by_unit.setdefault(unit, []).append(delivery)
                ack_pages = [
                    (unit, ids[i : i + ACK_PAGE])
                    for unit, ids in by_unit.items()
                    for i in range(0, len(ids), ACK_PAGE)
                ]

                async def ack_page(unit: str, ids: list[str]) -> None:
                    acks = [{"delivery_id": d, "result": "done"} for d in ids]
                    await ask("POST", "/v1/inbox/ack", unit, json={"acks": acks})

                name = f"POST /v1/inbox/ack ({ACK_PAGE} a request), a copy"
                await phase(name, ack_pages, ack_page, per=len(waiting))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--letters", type=int, default=2000, help="letters in each round")
    parser.add_argument("--workers", type=int, default=1, help="gateway serve --workers")
    parser.add_argument("--amqp", help="RabbitMQ URL (default: the embedded bus)")
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    asyncio.run(main(args))
