"""The raw stages a package needs, measured on the same bytes with the libraries alone: lxml's
parse and the strict schema, signxml's verify with the signer's certificate pinned, one
confirmed publish of the package (aio-pika to RabbitMQ, or a committed SQLite insert for the
embedded bus) and one committed ledger-sized row (asyncpg or sqlite3). Each is reported as CPU
seconds per operation, the client's and the server's together; the stage-sum limit is what
the machine's cores could accept if a package cost nothing but these.

Beside them, one request over HTTP (aiohttp's client and a bare aiohttp server), which the
stage-sum leaves out: with it, the cycle floor is what the cores could carry if a full cycle
(four requests, the package's parse, schema and signature, a committed row) cost nothing else.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from lxml import etree

from gateway.bench.procstat import cpu_seconds, pids_named
from gateway.envelope import Kind, Profile
from gateway.envelope.schema import load_schema

ROW = os.urandom(420)  # about the size of a ledger entry with its leaf and nodes


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float  # CPU seconds per operation, client and server

    @property
    def micros(self) -> float:
        return self.seconds * 1e6


def _timed(work: Callable[[], object], seconds: float) -> float:
    """CPU seconds per call of ``work`` in this thread, over about ``seconds``."""
    work()  # warm caches and lazy loading
    count, started = 0, time.thread_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        work()
        count += 1
    return (time.thread_time() - started) / count


def parse_and_schema(data: bytes, seconds: float) -> Stage:
    schema = load_schema(Kind.DOCUMENT, Profile.STRICT)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

    def work() -> None:
        if not schema.validate(etree.fromstring(data, parser)):
            raise AssertionError(f"the benchmark package is not valid: {schema.error_log}")

    return Stage("parse + XSD (lxml)", _timed(work, seconds))


def signature(data: bytes, certificate: x509.Certificate, seconds: float) -> Stage:
    from cryptography.hazmat.primitives.serialization import Encoding
    from signxml.verifier import XMLVerifier

    pem = certificate.public_bytes(Encoding.PEM).decode()
    return Stage(
        "verify (signxml)",
        _timed(lambda: XMLVerifier().verify(data, x509_cert=pem, expect_references=1), seconds),
    )


def sqlite_commit(name: str, payload: bytes, seconds: float) -> Stage:
    """One row inserted and committed (WAL, synchronous FULL), as the embedded stores do."""
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as folder:
        db = sqlite3.connect(Path(folder) / "stage.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")

        def work() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (body) VALUES (?)", (payload,))
            db.execute("COMMIT")

        try:
            return Stage(name, _timed(work, seconds))
        finally:
            db.close()


async def postgres_commit(url: str, seconds: float) -> Stage:
    """One ledger-sized row inserted and committed by asyncpg: client and backend CPU."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql", query={}).render_as_string(False)
    conn = await asyncpg.connect(dsn)
    table = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        await conn.execute(f"CREATE TEMPORARY TABLE {table} (id bigserial PRIMARY KEY, body bytea)")
        insert = await conn.prepare(f"INSERT INTO {table} (body) VALUES ($1)")
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        await insert.fetch(ROW)
        count, client, server = 0, time.process_time(), cpu_seconds(backend)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await insert.fetch(ROW)
            count += 1
        used = time.process_time() - client + cpu_seconds(backend) - server
    finally:
        await conn.close()
    return Stage("ledger row (asyncpg, commit)", used / count)


async def amqp_publish(url: str, body: bytes, seconds: float, window: int = 256) -> Stage:
    """Confirmed persistent publishes to one quorum queue, ``window`` in flight: client and
    broker CPU."""
    import aio_pika

    name = f"gateway-bench-stage-{uuid.uuid4().hex[:8]}"
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        broker = pids_named("beam.smp")
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        exchange = channel.default_exchange
        await exchange.publish(message, name)
        count, client = 0, time.process_time()
        server = sum(cpu_seconds(p) for p in broker)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await asyncio.gather(*(exchange.publish(message, name) for _ in range(window)))
            count += window
        used = time.process_time() - client + sum(cpu_seconds(p) for p in broker) - server
        await channel.queue_delete(name)
    finally:
        await conn.close()
    return Stage("confirmed publish (aio-pika)", used / count)


async def http_request(body: bytes, seconds: float, connections: int = 32) -> Stage:
    """A POST of the package, answered with a short JSON document by a bare aiohttp server
    (no middleware, no access log), ``connections`` at once kept alive: the client's and the
    server's CPU together, both in this process."""
    import aiohttp
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        size = len(await request.read())
        return web.json_response({"document_key": "0" * 40, "size": size}, status=202)

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    count = 0
    headers = {"Content-Type": "application/xml", "Authorization": "Bearer bench"}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections)
        ) as session:

            async def one() -> None:
                async with session.post(
                    f"http://127.0.0.1:{port}/", data=body, headers=headers
                ) as r:
                    await r.json()

            await asyncio.gather(*(one() for _ in range(connections)))  # connections opened
            started = time.process_time()
            deadline = time.perf_counter() + seconds

            async def client() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    await one()
                    count += 1

            await asyncio.gather(*(client() for _ in range(connections)))
            used = time.process_time() - started
    finally:
        await runner.cleanup()
    return Stage("HTTP request (aiohttp)", used / max(1, count))


def stage_sum_limit(stages: list[Stage], cores: int) -> float:
    """Packages per second the cores could accept if each cost only these stages."""
    return cores / sum(s.seconds for s in stages)


def cycle_floor(package: list[Stage], request: Stage, cores: int, requests: int = 4) -> float:
    """Full cycles per second the cores could carry if each cost only its ``requests`` (four:
    submit, list, fetch, acknowledge; three when the listing carries the package) and
    ``package`` (a pull copy is not published: the stages without the bus's)."""
    return cores / (requests * request.seconds + sum(s.seconds for s in package))
