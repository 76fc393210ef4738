"""What the HTTP layer around a handler costs the gateway's process: one request answered by a
bare aiohttp server, then with the access log line `gateway serve` writes (its format and its
log configuration, to a file), then with the middlewares that need no database as well (the
request id, the metrics, the problem answers). Server CPU only: the client runs in a process
of its own, and the rounds alternate.

    .venv/bin/python bench/bench_request.py [--requests 30000] [--rounds 3]

A full cycle makes three or four requests (submit, list now and then, fetch, acknowledge).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time

from aiohttp import web

from gateway.api.health import METRICS, Metrics, metrics_middleware
from gateway.api.problems import problems_middleware, request_id_middleware
from gateway.config import LogSettings
from gateway.logs import ACCESS_LOG_FORMAT, configure_logging

CONNECTIONS = 32
BODY = b"x" * 8000  # about a letter

# The client: its connections kept alive, each POSTing its share one after the other.
CLIENT = """
import asyncio, sys, aiohttp
port, count, size, connections = map(int, sys.argv[1:5])
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def one():
            async with session.post(f"http://127.0.0.1:{port}/v1/x/1", data=b"x" * size) as r:
                await r.read()
        async def share():
            for _ in range(count // connections):
                await one()
        await asyncio.gather(*(share() for _ in range(connections)))
asyncio.run(main())
"""


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"document_key": "0" * 40}, status=202)


def application(middlewares: bool) -> web.Application:
    chosen = [request_id_middleware, metrics_middleware, problems_middleware]
    app = web.Application(middlewares=chosen if middlewares else [])
    app[METRICS] = Metrics()
    app.router.add_post("/v1/x/{id}", answer)
    return app


async def server_cpu(app: web.Application, access_log: bool, count: int) -> float:
    """Microseconds of this process's CPU per request answered."""
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        started = time.process_time()
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, *map(str, (port, count, len(BODY), CONNECTIONS))
        )
        if await client.wait() != 0:
            raise SystemExit("the client failed")
        return (time.process_time() - started) * 1e6 / (count // CONNECTIONS * CONNECTIONS)
    finally:
        await runner.cleanup()


async def main(count: int, rounds: int) -> None:
    configure_logging(LogSettings())  # as `gateway serve` does, into a file instead of stderr
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log_file:
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(log_file)
        ways = {
            "bare aiohttp": (False, False),
            "with the access log": (False, True),
            "with the access log and the middlewares": (True, True),
        }
        best = dict.fromkeys(ways, float("inf"))
        for _ in range(rounds):
            for name, (middlewares, access_log) in ways.items():
                used = await server_cpu(application(middlewares), access_log, count)
                best[name] = min(best[name], used)
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    bare = best["bare aiohttp"]
    for name, micros in best.items():
        print(f"{name}: {micros:,.0f} µs of server CPU a request (+{micros - bare:,.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
