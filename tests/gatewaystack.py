"""A whole gateway for tests, twice: embedded (SQLite + LocalBus) and production-like
(RabbitMQ + PostgreSQL, failing instead of skipping in CI), served over real HTTP on 127.0.0.1,
with a webhook server standing in for a push unit's system. Every answer the tests receive
from it is checked against the OpenAPI document (tests/apicheck.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from apicheck import Recorder

from gateway.api.app import build_app
from gateway.bus import AmqpBus, ClaimStore, RetryPolicy
from gateway.bus.codec import is_notice
from gateway.config import (
    ApiSettings,
    BusSettings,
    FederationSettings,
    LedgerSettings,
    Secret,
    Settings,
    VxpSettings,
)
from gateway.db.testing import create_scratch_schema, drop_scratch_schema
from gateway.directory import load_directory
from gateway.service.runtime import Runtime, start_runtime
from gateway.service.tokens import Role, issue_token
from gateway.trust import init_keys

SENDER = "000.00.05.H07"  # Sở Nội vụ: pull
PULL = "000.00.06.H07"  # Sở Tài chính: pull
PUSH = "000.00.07.H07"  # Sở Tư pháp: push to the test webhook
NATIVE = "000.01.20.H07"  # Phòng Nội vụ huyện: its own AMQP consumer (inbox when embedded)
SUSPENDED = "000.00.08.H07"
OUTSIDER = "000.00.09.H07"  # a unit that is party to nothing

# Urgent letters (priority >= 1) expire after 3 s: how the tests see an expiry.
POLICY = RetryPolicy.of_seconds(
    [0.3, 0.5], ttl=120, urgent_delays=[0.3], urgent_ttl=3, max_attempts=20
)


def directory_csv(webhook_url: str) -> str:
    return f"""\
code,name,parent_code,level,delivery,endpoint,status
000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active
{SENDER},Sở Nội vụ,000.00.00.H07,2,pull,,active
{PULL},Sở Tài chính,000.00.00.H07,2,pull,,active
{PUSH},Sở Tư pháp,000.00.00.H07,2,push,{webhook_url},active
{SUSPENDED},Sở Xây dựng,000.00.00.H07,2,pull,,suspended
{OUTSIDER},Sở Y tế,000.00.00.H07,2,pull,,active
000.00.20.H07,Ủy ban nhân dân huyện,000.00.00.H07,2,pull,,active
{NATIVE},Phòng Nội vụ huyện,000.00.20.H07,3,amqp,,active
"""


class Webhook:
    """A push unit's receiving system: records what arrives, answers with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[str, bytes]] = []  # (delivery id, body) of accepted posts
        self.headers: list[dict[str, str]] = []  # and their headers
        self.refused = 0
        # Answer each package with a signed statement of reception made by this (delivery id,
        # body -> compact JWS), as a receiving system that signs does.
        self.sign: Callable[[str, bytes], str] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.status != 200:
            self.refused += 1
            return web.Response(status=self.status, text="down for maintenance")
        delivery_id = request.headers["X-Gateway-Delivery-Id"]
        self.received.append((delivery_id, body))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.sign is not None and "X-Gateway-Notice" not in request.headers:
            return web.json_response({"acknowledgement": self.sign(delivery_id, body)})
        return web.Response(status=200, text="ok")


@dataclass
class Stack:
    kind: str
    runtime: Runtime
    url: str
    keys: Path
    webhook: Webhook
    tokens: dict[str, str] = field(default_factory=dict)  # unit or role name -> bearer token
    amqp_url: str | None = None
    namespace: str = "gw"
    # (unit, kind) -> messages its own AMQP consumer read while it looked for the other kind
    set_aside: dict[tuple[str, str], list[Consumed]] = field(default_factory=dict)


@dataclass(frozen=True)
class Consumed:
    """A message as a unit's own AMQP consumer reads it from its queue: a copy, or (``gw-kind:
    notice``) a transport notice for the unit as a sender, whose ``id`` is the notice's."""

    id: str
    body: bytes
    headers: dict[str, Any]
    kind: str = "copy"

    @property
    def delivery_id(self) -> str:
        assert self.kind == "copy", "a notice has no delivery id of its own"
        return self.id


async def native_consume(
    stack: Stack, code: str, timeout: float = 15.0, *, kind: str = "copy"
) -> Consumed:
    """What a unit's own AMQP consumer does: read its queue on the broker, acknowledge; tell a
    notice from a copy by ``gw-kind`` first. Returns the next message of ``kind``; one of the
    other kind read meanwhile is kept for a later call (``stack.set_aside``)."""
    assert stack.amqp_url is not None
    waiting = stack.set_aside.setdefault((code, kind), [])
    if waiting:
        return waiting.pop(0)
    connection = await aio_pika.connect_robust(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{stack.namespace}.unit.{code}", passive=True)
        async with asyncio.timeout(timeout):
            while True:
                while (message := await queue.get(fail=False)) is None:
                    await asyncio.sleep(0.1)
                await message.ack()
                headers = dict(message.headers)
                if is_notice(headers):
                    read = Consumed(str(headers["gw-notice-id"]), message.body, headers, "notice")
                else:
                    read = Consumed(str(headers["gw-delivery-id"]), message.body, headers)
                if read.kind == kind:
                    return read
                stack.set_aside.setdefault((code, read.kind), []).append(read)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/inbox", hook.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield hook, str(server.make_url("/inbox"))
    await server.close()


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
async def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    webhook: tuple[Webhook, str],
) -> AsyncIterator[Stack]:
    hook, hook_url = webhook
    async with open_stack(request, tmp_path, hook, directory_csv(hook_url)) as opened:
        yield opened


@pytest.fixture(params=["embedded"])
async def embedded(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[Stack]:
    """The embedded stack alone: for what does not depend on the bus or the database (who may
    do what, how requests are checked, the adapters)."""
    hook, hook_url = webhook
    async with open_stack(request, tmp_path, hook, directory_csv(hook_url)) as opened:
        yield opened


def province_csv(webhook_url: str) -> str:
    """The bundled sample province (809 units), every push unit posting to the test webhook."""
    from gateway.directory.load import SAMPLE_PATH

    text = SAMPLE_PATH.read_text(encoding="utf-8")
    return re.sub(r"https://[^,]+", webhook_url, text)


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
async def province(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    webhook: tuple[Webhook, str],
) -> AsyncIterator[Stack]:
    """A gateway over the whole sample province."""
    hook, hook_url = webhook
    async with open_stack(request, tmp_path, hook, province_csv(hook_url)) as opened:
        yield opened


@contextlib.asynccontextmanager
async def open_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    hook: Webhook,
    directory_text: str,
    api: ApiSettings | None = None,
    vxp: VxpSettings | None = None,
    federation: FederationSettings | None = None,
    ledger: LedgerSettings | None = None,
    amqp_url: str | None = None,
    policy: RetryPolicy = POLICY,
) -> AsyncIterator[Stack]:
    """``amqp_url``: the broker at another address than the ``amqp_url`` fixture's (through a
    proxy that can cut it off)."""
    directory_file = tmp_path / "units.csv"
    directory_file.write_text(directory_text, encoding="utf-8")
    keys = tmp_path / "keys"
    init_keys(keys, load_directory(directory_file))
    namespace = f"e2e{uuid.uuid4().hex[:10]}"
    database_url = None
    if request.param == "embedded":
        amqp_url = None
    else:
        amqp_url = amqp_url or request.getfixturevalue("amqp_url")
        database_url = await create_scratch_schema(request.getfixturevalue("database_url"))
    settings = Settings(
        home=tmp_path / "var",
        amqp_url=Secret(amqp_url) if amqp_url else None,
        database_url=Secret(database_url) if database_url else None,
        directory=directory_file,
        keys=keys,
        bus=BusSettings(namespace=namespace, prefetch=4),
        ledger=ledger or LedgerSettings(origin="gateway.test/ledger", checkpoint_entries=5),
        api=api or ApiSettings(),
        vxp=vxp or VxpSettings(),
        federation=federation or FederationSettings(),
    )
    runtime = await start_runtime(settings, policy=policy, intervals=(0.5, 0.5, 0.5))
    server = TestServer(build_app(runtime), host="127.0.0.1")
    await server.start_server()
    # every answer this gateway gives a test is checked against the OpenAPI document
    recorder: Recorder = request.getfixturevalue("api_responses")
    recorder.watch(str(server.make_url("")).rstrip("/"))
    stack = Stack(
        request.param,
        runtime,
        str(server.make_url("")).rstrip("/"),
        keys,
        hook,
        amqp_url=amqp_url,
        namespace=namespace,
    )
    for unit in (SENDER, PULL, PUSH, NATIVE, OUTSIDER):
        stack.tokens[unit] = (await issue_token(runtime.ledger.engine, unit, Role.UNIT)).token
    for role in (Role.OPERATOR, Role.AUDITOR):
        issued = await issue_token(runtime.ledger.engine, "000.00.00.H07", role)
        stack.tokens[role.value] = issued.token
    try:
        yield stack
    finally:
        await server.close()
        await runtime.stop(grace=2)
        if amqp_url:
            cleaner = AmqpBus(
                amqp_url, namespace=namespace, claims=ClaimStore(tmp_path / "c"), policy=policy
            )
            links = [link.queue for link in runtime.gateway.links]
            await cleaner.destroy([*(unit.code for unit in runtime.gateway.directory), *links])
        if database_url:
            await drop_scratch_schema(database_url)
