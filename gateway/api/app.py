"""The aiohttp application: middlewares (metrics, problems, authentication), every route, and
the gateway's life cycle (started with the app, stopped gracefully with it)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from importlib.metadata import version

from aiohttp import web

from gateway.api import admin, audit, exchange, health
from gateway.api.context import LIMITER, RUNTIME, auth_middleware
from gateway.api.health import METRICS, Metrics, metrics_middleware
from gateway.api.limits import RateLimiter
from gateway.api.openapi import openapi_document
from gateway.api.problems import problems_middleware
from gateway.config import Settings
from gateway.service.actions import Actor
from gateway.service.runtime import Runtime, start_runtime

# Request bodies may be as large as the envelope's size cap, and a little more.
SLACK = 64 * 1024


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(version("gateway")))


def _application(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problems_middleware, auth_middleware],
        client_max_size=settings.envelope.max_bytes + SLACK,
    )
    app[METRICS] = Metrics()
    app[LIMITER] = RateLimiter(settings.api.rate, settings.api.burst)
    app.router.add_routes(exchange.routes)
    app.router.add_routes(audit.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(health.routes)
    app.router.add_get("/v1/openapi.json", _openapi)
    return app


def _attach(app: web.Application, runtime: Runtime) -> None:
    app[RUNTIME] = runtime
    runtime.reloader.listeners.append(app[METRICS].observe_reload)


def build_app(runtime: Runtime) -> web.Application:
    """The application over a runtime that is already started (tests, embedding)."""
    app = _application(runtime.settings)
    _attach(app, runtime)
    return app


def create_app(settings: Settings) -> web.Application:
    """An application that starts the gateway with itself and stops it on shutdown."""
    app = _application(settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        runtime = await start_runtime(settings)
        _attach(app, runtime)
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[object]] = set()

        def on_hangup() -> None:  # SIGHUP: read the directory and trust files again
            task = loop.create_task(runtime.admin.reload(Actor.SYSTEM, "signal"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        await runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
