"""The aiohttp application: middlewares (metrics, problems, authentication), every route, and
the gateway's life cycle (started with the app, stopped gracefully with it)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

from aiohttp import web

from gateway import console
from gateway.api import admin, audit, exchange, health, vxp
from gateway.api.connections import ConnectionCap
from gateway.api.context import (
    CERTIFICATES,
    LIMITER,
    RUNTIME,
    UPLOADS,
    CertificatesSlot,
    RuntimeSlot,
    auth_middleware,
)
from gateway.api.health import METRICS, MULTIPROCESS_VARIABLE, Metrics, metrics_middleware
from gateway.api.limits import RateLimiter, Uploads
from gateway.api.openapi import openapi_document
from gateway.api.problems import problems_middleware, request_id_middleware
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.logs import ACCESS_LOG_FORMAT
from gateway.memory import freeze_start_up
from gateway.service.actions import Actor
from gateway.service.runtime import Runtime, start_runtime

log = logging.getLogger(__name__)

# Request bodies may be as large as the envelope's size cap, and a little more.
SLACK = 64 * 1024
BACKLOG = 2048  # connections the kernel holds for the port until the process accepts them


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(version("gateway")))


def _application(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            problems_middleware,
            auth_middleware,
        ],
        client_max_size=settings.envelope.max_bytes + SLACK,
    )
    # several workers keep their counts in one folder (gateway.api.workers)
    app[METRICS] = Metrics(shared=os.environ.get(MULTIPROCESS_VARIABLE))
    app[RUNTIME] = RuntimeSlot()
    app[CERTIFICATES] = CertificatesSlot()
    app[LIMITER] = RateLimiter(settings.api.rate, settings.api.burst)
    api = settings.api
    app[UPLOADS] = Uploads(api.uploads_per_token, api.uploads, api.body_timeout)
    app.router.add_routes(exchange.routes)
    app.router.add_routes(audit.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(health.routes)
    app.router.add_get("/v1/openapi.json", _openapi)
    console.mount(app, settings)
    if settings.vxp.enabled:  # the national-axis façade (docs/national-axis.md)
        vxp.mount(app, settings)
    app.on_shutdown.append(_stopping)
    return app


async def _stopping(app: web.Application) -> None:
    """Before the grace for requests in progress: long polls answer now instead of holding
    the stop for their whole wait."""
    runtime = app[RUNTIME].runtime
    if runtime is not None:
        runtime.stopping()


def _attach(app: web.Application, runtime: Runtime) -> None:
    app[RUNTIME].runtime = runtime
    app[RUNTIME].waiting = None
    runtime.reloader.listeners.append(app[METRICS].observe_reload)
    runtime.deliverer.on_push_failure.append(app[METRICS].observe_push_failure)
    runtime.gateway.writer.on_batch.append(app[METRICS].observe_batch)


def build_app(runtime: Runtime) -> web.Application:
    """The application over a runtime that is already started (tests, embedding)."""
    app = _application(runtime.settings)
    _attach(app, runtime)
    return app


# Errors that mean "not yet": the gateway keeps trying to start while they last.
WAIT_FOR = frozenset({"bus_unavailable", "database_unavailable"})
RETRY_SECONDS = (1, 2, 5, 10, 30)  # between attempts to start; the last repeats


async def _keep_starting(app: web.Application, settings: Settings) -> None:
    """Start the gateway, again and again while the database or the broker does not answer,
    saying so each time; HTTP answers 503 with the reason meanwhile."""
    slot = app[RUNTIME]
    for attempt in itertools.count():
        try:
            _attach(app, await start_runtime(settings))
            log.info("gateway started after %d attempts", attempt + 1)
            return
        except GatewayError as e:
            if e.code not in WAIT_FOR:
                log.error("the gateway cannot start: %s", e.message)
                raise SystemExit(2) from e  # out of the event loop: the process stops
            slot.waiting, reason = e, e.message
        except Exception as e:
            log.exception("the gateway cannot start")
            raise SystemExit(2) from e
        delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
        log.warning("not ready: %s; trying again in %d s", reason, delay)
        await asyncio.sleep(delay)


def create_app(settings: Settings) -> web.Application:
    """An application that starts the gateway with itself and stops it on shutdown. If the
    database or the broker does not answer at start, it serves 503 with the reason and
    keeps trying in the background; any other problem stops it."""
    app = _application(settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        slot = app[RUNTIME]
        starter: asyncio.Task[None] | None = None
        try:
            _attach(app, await start_runtime(settings))
        except GatewayError as e:
            if e.code not in WAIT_FOR:
                raise
            slot.waiting = e
            log.warning("not ready: %s; the gateway keeps trying in the background", e.message)
            starter = asyncio.create_task(_keep_starting(app, settings), name="gateway-start")
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[object]] = set()

        def on_hangup() -> None:  # SIGHUP: read the directory and trust files again
            if slot.runtime is None:
                return
            task = loop.create_task(slot.runtime.admin.reload(Actor.SYSTEM, "signal"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        if starter is not None:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, GatewayError):
                await starter
        if slot.runtime is not None:
            await slot.runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


def serve(
    settings: Settings,
    *,
    grace: float,
    ssl_context: ssl.SSLContext | None,
    say: Callable[[str], None] | None,
    host: str | None = None,
    port: int = 0,
    sock: socket.socket | None = None,
) -> None:
    """Serve the API until the process is stopped (SIGINT or SIGTERM), on ``host`` and
    ``port`` or a listening socket shared by workers; ``grace`` seconds for requests in
    progress at the end."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(settings, grace, ssl_context, say, host, port, sock))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()  # its cleanup stops the gateway gracefully
        while not main.done():  # a second signal (to a whole process group) does not cut it short
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
                loop.run_until_complete(main)
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(
    settings: Settings,
    grace: float,
    ssl_context: ssl.SSLContext | None,
    say: Callable[[str], None] | None,
    host: str | None,
    port: int,
    sock: socket.socket | None,
) -> None:
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=True,  # SIGINT and SIGTERM end the run with GracefulExit
        # aiohttp's keep-alive timer runs from a connection's opening and between its
        # requests, until a request's headers are complete: the header timeout.
        keepalive_timeout=settings.api.header_timeout,
        shutdown_timeout=grace,
        access_log_format=ACCESS_LOG_FORMAT,
    )
    await runner.setup()
    assert runner.server is not None
    metrics = app[METRICS]
    cap = ConnectionCap(settings.api.connections_per_address, metrics.connections_refused.inc)
    listening = None
    try:
        # Started: what start-up made stays out of the collector's full passes (a pass over
        # it takes 150-200 ms), and only then does the port listen.
        freeze_start_up()
        loop, factory = asyncio.get_running_loop(), cap.gate(runner.server)
        if sock is not None:  # a worker's socket of the shared port: it listens from now on
            listening = await loop.create_server(
                factory, sock=sock, ssl=ssl_context, backlog=BACKLOG
            )
        else:
            listening = await loop.create_server(
                factory, host, port, ssl=ssl_context, backlog=BACKLOG, reuse_address=True
            )
        if say:
            scheme = "https" if ssl_context else "http"
            where = ", ".join(
                f"{scheme}://{s.getsockname()[0]}:{s.getsockname()[1]}" for s in listening.sockets
            )
            say(f"======== Running on {where} ========\n(Press CTRL+C to quit)")
        await asyncio.Event().wait()  # until a signal or a failure to start ends the run
    finally:
        if listening is not None:
            listening.close()  # no new connections; those open finish within the grace
        await runner.cleanup()
