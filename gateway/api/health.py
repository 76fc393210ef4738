"""Probes and metrics: /healthz (the process is up), /readyz (the database and the bus answer),
/metrics (Prometheus).

A process's own counts (requests, refusals, the writer's batches…) are kept by
prometheus_client; with several workers (``gateway serve --workers N``) each worker keeps them
in files of a folder the workers share (prometheus_client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, see gateway.api.workers), and a scrape,
whichever worker answers it, reports the sum over all of them. What the database knows (the
backlog, the ledger's size and checkpoint) is read at each scrape and reported once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from gateway.api.context import OUTCOME, RUNTIME
from gateway.api.problems import Handler
from gateway.db.engine import reader
from gateway.service import store
from gateway.service.reload import ReloadResult
from gateway.service.writer import BatchTimes

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# Where the workers keep their counts: prometheus_client's own switch to its multiprocess mode.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# A batch waits and holds the lock for milliseconds, tens under load.
_LOCK_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0)


class Metrics:
    """The process's Prometheus metrics, in a registry of their own; with several workers,
    ``shared`` is the folder where every worker keeps its counts."""

    def __init__(self, shared: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.shared = shared
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "gateway_rejections", "Refused requests by error code", ["code"], registry=self.registry
        )
        self.packages = Counter(
            "gateway_packages", "Packages accepted or replayed", ["outcome"], registry=self.registry
        )
        self.push_failures = Counter(
            "gateway_push_failures",
            "Deliveries to a push unit's endpoint that failed, by unit",
            ["unit"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "gateway_reloads",
            "Reloads of the directory and trust files, by result (ok or failed)",
            ["result"],
            registry=self.registry,
        )
        self.reloaded_at = Gauge(
            "gateway_reload_last_success_seconds",
            "When the directory and trust files were last loaded (Unix time; with several "
            "workers, the earliest of their last loads)",
            registry=self.registry,
            multiprocess_mode="min",
        )
        self.reloaded_at.set_to_current_time()
        self.writer_batches = Counter(
            "gateway_writer_batches",
            "Write transactions committed by this process (each holds the ledger lock once)",
            registry=self.registry,
        )
        self.writer_jobs = Counter(
            "gateway_writer_jobs",
            "Requests' database work done in those transactions",
            registry=self.registry,
        )
        self.writer_waited = Histogram(
            "gateway_writer_lock_wait_seconds",
            "Time a write transaction waited for the ledger lock",
            buckets=_LOCK_BUCKETS,
            registry=self.registry,
        )
        self.writer_held = Histogram(
            "gateway_writer_lock_held_seconds",
            "Time a write transaction held the ledger lock, until its commit was done",
            buckets=_LOCK_BUCKETS,
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "gateway_connections_refused",
            "Connections closed at once: their client address had as many open as allowed",
            registry=self.registry,
        )
        if shared is None:  # of the one process; a worker's would be one of several
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def exposition(self) -> bytes:
        """The counts in Prometheus's text format: this process's, or all the workers'."""
        if self.shared is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self.shared)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def observe_batch(self, times: BatchTimes) -> None:
        self.writer_batches.inc()
        self.writer_jobs.inc(times.jobs)
        self.writer_waited.observe(times.waited)
        self.writer_held.observe(times.held)

    def observe_push_failure(self, unit: str) -> None:
        self.push_failures.labels(unit).inc()

    def observe_reload(self, result: ReloadResult) -> None:
        self.reloads.labels("ok" if result.ok else "failed").inc()
        if result.ok:
            self.reloaded_at.set(result.at.timestamp())


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    metrics: Metrics = request.app[METRICS]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    if response.status >= 400 and response.content_type == "application/problem+json":
        code = response.headers.get("X-Gateway-Error", "")
        if code:
            metrics.rejections.labels(code).inc()
    outcome = request.get(OUTCOME)
    if outcome:
        metrics.packages.labels(outcome).inc()
    return response


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Whether the database and the bus answer: ``ok`` or ``unavailable`` each, for anyone; what
    failed goes to the log, not to the caller."""
    slot = request.app[RUNTIME]
    if slot.runtime is None:
        if slot.waiting is not None:
            log.warning("not ready: %s", slot.waiting.message)
        waiting = slot.waiting.code if slot.waiting else "starting"
        return web.json_response({"ready": False, "starting": waiting}, status=503)
    runtime = slot.runtime

    async def database() -> None:
        async with runtime.ledger.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def bus() -> None:
        await runtime.bus.counters([next(iter(runtime.gateway.directory)).code])

    checks: dict[str, str] = {}
    for name, probe in (("database", database), ("bus", bus)):
        try:
            async with asyncio.timeout(5):
                await probe()
            checks[name] = "ok"
        except Exception as e:
            log.warning("not ready: the %s does not answer: %s: %s", name, type(e).__name__, e)
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)


class _Stored(Collector):
    """What the database knows, read for one scrape: the same whichever process answers."""

    def __init__(
        self, backlog: dict[str, store.UnitBacklog], entries: int, age: float | None
    ) -> None:
        self.backlog, self.entries, self.age = backlog, entries, age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        copies = GaugeMetricFamily(
            "gateway_unit_copies",
            "Copies not delivered, by unit and state (waiting includes retrying)",
            labels=["unit", "state"],
        )
        oldest = GaugeMetricFamily(
            "gateway_unit_oldest_waiting_seconds",
            "Age of the unit's oldest copy waiting to be delivered",
            labels=["unit"],
        )
        for b in self.backlog.values():
            for state in ("waiting", "retrying", "expired", "dead"):
                copies.add_metric([b.unit, state], getattr(b, state))
            if b.oldest_waiting_at is not None:
                oldest.add_metric([b.unit], (now - b.oldest_waiting_at).total_seconds())
        yield copies
        yield oldest
        yield GaugeMetricFamily("gateway_ledger_entries", "Entries in the ledger", self.entries)
        if self.age is not None:
            yield GaugeMetricFamily(
                "gateway_ledger_checkpoint_age_seconds",
                "Seconds since the latest signed checkpoint",
                self.age,
            )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Cheap to scrape: the backlog reads only the copies not delivered (by index), the
    ledger its newest row and checkpoint; the bus is not asked (``gateway bus status``)."""
    body = request.app[METRICS].exposition()
    runtime = request.app[RUNTIME].runtime
    if runtime is not None:
        ledger = runtime.ledger
        async with reader(ledger.engine).connect() as conn:
            backlog = await store.backlogs(conn)
        latest = await ledger.latest_checkpoint()
        age = None
        if latest is not None:
            age = (datetime.now(UTC) - latest.created_at).total_seconds()
        stored = CollectorRegistry()
        stored.register(_Stored(backlog, await ledger.size(), age))
        body += generate_latest(stored)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
