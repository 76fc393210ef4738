"""A scripted HTTP server for client tests: it records each request and answers from a table,
in its own thread, so that synchronous code (the CLI's asyncio.run) can call it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class Scripted:
    """An aiohttp server in a thread that records requests and answers from a script."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        # A response can be sent once; a route answers with a fresh one from its factory.
        self.answers: dict[tuple[str, str], Callable[[], web.Response]] = {}
        self.loop = asyncio.new_event_loop()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path.split("?")[0],
                "match": dict(request.match_info),
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        name = request.match_info.route.name or ""
        answer = self.answers.get((request.method, name))
        if answer is None:
            return web.json_response({"code": "not_found", "status": 404}, status=404)
        return answer()

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/packages", self.handle, name="submit")
        app.router.add_get("/v1/inbox", self.handle, name="inbox")
        app.router.add_get("/v1/inbox/{id}", self.handle, name="fetch")
        app.router.add_post("/v1/inbox/{id}/ack", self.handle, name="ack")
        app.router.add_get("/v1/documents/{key}", self.handle, name="document")
        app.router.add_get("/v1/ledger/receipts", self.handle, name="receipts")
        runner = web.AppRunner(app)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
