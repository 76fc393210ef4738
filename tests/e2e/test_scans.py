"""A scanned letter over HTTP: its body is spooled as it arrives, the copy fetched by the
recipient is the same bytes (also by a unit that consumes its own AMQP queue, where a large
letter arrives as a claim), and a body over the cap is refused while it streams in."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from gatewaystack import NATIVE, OUTSIDER, PULL, PUSH, SENDER, Stack, native_consume
from sqlalchemy import select

from gateway.api.exchange import package_body
from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    make_attachment,
    sign_as_unit,
    unit,
)
from gateway.envelope import Organization
from gateway.errors import GatewayError
from gateway.service.models import delivery_table, package_table


def scanned_letter(stack: Stack, to: Organization, mib: int) -> bytes:
    package = build_letter(
        unit(SENDER, stack.runtime.gateway.directory),
        [to],
        "Về việc gửi hồ sơ scan",
        attachments=[make_attachment("ho-so.pdf", os.urandom(mib * 1024 * 1024))],
    )
    return sign_as_unit(package, stack.keys)


async def test_a_scan_travels_whole(stack: Stack) -> None:
    # 9 MiB: over libxml2's 10 MB text limit once in base64
    data = scanned_letter(stack, Organization(PULL, "Sở Tài chính"), 9)
    async with GatewayClient(stack.url, stack.tokens[SENDER], timeout=120) as gw:
        assert (await gw.submit(data)).status == 202
    async with GatewayClient(stack.url, stack.tokens[PULL], timeout=120) as gw:
        (item,) = (await gw.inbox())["items"]
        fetched = await gw.fetch(item["delivery_id"])
        await gw.ack(item["delivery_id"])
    assert hashlib.sha256(fetched.data).hexdigest() == hashlib.sha256(data).hexdigest()
    # Kept as a file of the package store, not in the database row.
    async with stack.runtime.ledger.engine.connect() as conn:
        row = (await conn.execute(select(package_table.c.raw, package_table.c.raw_claim))).one()
    assert row.raw == b"" and row.raw_claim == "sha256:" + hashlib.sha256(data).hexdigest()
    assert await stack.runtime.gateway.bodies.get(row.raw_claim) == data


async def refusal(stack: Stack, who: str, delivery_id: str) -> tuple[int, str]:
    async with GatewayClient(stack.url, stack.tokens[who]) as gw:
        with pytest.raises(ApiError) as refused:
            await gw.delivery_body(delivery_id)
    return refused.value.status, refused.value.code


@pytest.mark.parametrize("stack", ["rabbitmq+postgresql"], indirect=True)
async def test_a_unit_on_its_own_queue_fetches_a_claimed_scan_while_it_is_live(
    stack: Stack,
) -> None:
    """A 5 MiB scan for a unit that consumes its own AMQP queue arrives there as a claim (an
    empty body and gw-claim); the unit fetches the bytes over HTTP with its token, and only it,
    and only until its status 01 says the letter arrived."""
    data = scanned_letter(stack, Organization(NATIVE, "Phòng Nội vụ huyện"), 5)
    digest = hashlib.sha256(data).hexdigest()
    async with GatewayClient(stack.url, stack.tokens[SENDER], timeout=120) as gw:
        submitted = await gw.submit(data)
    (copy,) = submitted.answer["recipients"]

    message = await native_consume(stack, NATIVE)
    assert message.body == b"" and message.headers["gw-claim"] == f"sha256:{digest}"
    assert message.delivery_id == copy["delivery_id"]
    assert message.headers["gw-document-key"] == submitted.document_key

    async with GatewayClient(stack.url, stack.tokens[NATIVE], timeout=120) as gw:
        fetched = await gw.delivery_body(message.delivery_id)
    assert len(fetched.data) == len(data) > 5 * 1024 * 1024
    assert hashlib.sha256(fetched.data).hexdigest() == digest
    assert fetched.document_key == submitted.document_key
    assert fetched.signature_state == "valid"

    # Only the recipient's token: another unit's is told nothing, operators and auditors no.
    assert await refusal(stack, OUTSIDER, message.delivery_id) == (404, "not_found")
    assert await refusal(stack, SENDER, message.delivery_id) == (404, "not_found")
    assert await refusal(stack, "operator", message.delivery_id) == (403, "forbidden")
    assert await refusal(stack, "auditor", message.delivery_id) == (403, "forbidden")
    assert await refusal(stack, NATIVE, "d-no-such-copy") == (404, "not_found")

    # Its status 01 says the letter arrived: delivered, and the body is no longer served.
    arrived = build_status(unit(NATIVE), submitted.document_key, "01")
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:
        await gw.submit(sign_as_unit(arrived, stack.keys))
        view = await gw.document(submitted.document_key)
    assert view["recipients"][0]["transport"] == "delivered"
    assert await refusal(stack, NATIVE, message.delivery_id) == (410, "delivery_closed")


@pytest.mark.parametrize("stack", ["rabbitmq+postgresql"], indirect=True)
async def test_a_copy_past_its_time_to_live_is_no_longer_served(stack: Stack) -> None:
    """No gateway consumer reads an AMQP unit's queue, so nothing marks its copy expired: the
    route itself counts the time-to-live (3 s for urgent letters here) from the queueing."""
    package = build_letter(
        unit(SENDER), [Organization(NATIVE, "Phòng Nội vụ huyện")], "Hỏa tốc", priority=1
    )
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        submitted = await gw.submit(sign_as_unit(package, stack.keys))
    message = await native_consume(stack, NATIVE)
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:
        assert (await gw.delivery_body(message.delivery_id)).document_key == (
            submitted.document_key
        )
    expires_at = message.headers["gw-expires-at"] / 1000
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 1.5)
    assert await refusal(stack, NATIVE, message.delivery_id) == (410, "delivery_closed")


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
async def test_on_the_embedded_bus_the_body_is_served_until_the_inbox_copy_is_acknowledged(
    stack: Stack,
) -> None:
    """With no broker, AMQP units read the pull inbox; the route serves the same copy while
    it waits there, and never a pull unit's copy (that one is the inbox's)."""
    to = [Organization(NATIVE, "Phòng Nội vụ huyện"), Organization(PULL, "Sở Tài chính")]
    data = sign_as_unit(build_letter(unit(SENDER), to, "Về việc"), stack.keys)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        copies = {r["code"]: r["delivery_id"] for r in (await gw.submit(data)).answer["recipients"]}
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:
        assert (await gw.delivery_body(copies[NATIVE])).data == data
        await gw.ack(copies[NATIVE])
    assert await refusal(stack, NATIVE, copies[NATIVE]) == (410, "delivery_closed")
    assert await refusal(stack, PULL, copies[PULL]) == (404, "not_found")


def documented_consumer() -> Callable[..., Awaitable[None]]:
    """The consumer example of docs/bus.md, as written there."""
    text = (Path(__file__).parents[2] / "docs" / "bus.md").read_text(encoding="utf-8")
    section = text[text.index("## A unit's own consumer") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/bus.md", "exec"), namespace)
    consume: Callable[..., Awaitable[None]] = namespace["consume"]
    return consume


@pytest.mark.parametrize("stack", ["rabbitmq+postgresql"], indirect=True)
async def test_the_documented_consumer_takes_small_and_claimed_letters(stack: Stack) -> None:
    to = Organization(NATIVE, "Phòng Nội vụ huyện")
    scan = scanned_letter(stack, to, 2)
    small = sign_as_unit(build_letter(unit(SENDER), [to], "Về việc nhỏ"), stack.keys)
    # and, as a sender, the notice of its urgent letter that nobody fetches (3 s to live)
    unread = sign_as_unit(build_letter(unit(NATIVE), [unit(PULL)], "Khẩn", priority=1), stack.keys)
    stored: dict[str, bytes] = {}
    told: list[dict[str, Any]] = []

    async def store(delivery_id: str, document_key: str, body: bytes) -> None:
        stored[document_key] = body

    async def tell(notice: dict[str, Any]) -> None:
        told.append(notice)

    consumer = asyncio.create_task(
        documented_consumer()(
            stack.amqp_url, f"{stack.namespace}.unit.{NATIVE}", stack.url, stack.tokens[NATIVE],
            store, tell,
        )
    )  # fmt: skip
    try:
        async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:
            expiring = (await gw.submit(unread)).document_key
        async with GatewayClient(stack.url, stack.tokens[SENDER], timeout=120) as gw:
            keys = [(await gw.submit(data)).document_key for data in (scan, small)]
        async with asyncio.timeout(30):
            while len(stored) < 2 or not told:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the acknowledgement follows store() at once
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert stored == {keys[0]: scan, keys[1]: small}
    assert [(n["event"], n["document_key"]) for n in told] == [("expired", expiring)]
    assert (await stack.runtime.bus.counters([NATIVE]))[NATIVE].depth == 0  # acknowledged


async def _echo_server(limit: int) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        try:
            async with package_body(request, limit, timeout=30) as body:
                data = body if isinstance(body, bytes) else body.read()
        except GatewayError as e:
            return web.Response(status=413, text=e.code)
        return web.Response(text=hashlib.sha256(data).hexdigest())

    app = web.Application(client_max_size=1024)  # the spooled path does not use read()
    app.router.add_post("/", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


async def test_a_body_is_spooled_and_capped_as_it_streams() -> None:
    body = os.urandom(3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    async for url in _echo_server(limit=4 * 1024 * 1024):
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=io.BytesIO(body)) as r:  # a Content-Length
                assert (r.status, await r.text()) == (200, hashlib.sha256(body).hexdigest())
            async with session.post(url, data=chunks()) as r:  # chunked, no length
                assert (r.status, await r.text()) == (200, hashlib.sha256(body).hexdigest())
    async for url in _echo_server(limit=2 * 1024 * 1024):
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=io.BytesIO(body)) as r:  # its Content-Length
                assert (r.status, await r.text()) == (413, "xml_too_large")
            async with session.post(url, data=chunks()) as r:  # refused while it streams
                assert (r.status, await r.text()) == (413, "xml_too_large")


async def test_the_relay_publishes_a_claimed_scan_the_bus_missed(stack: Stack) -> None:
    """The bus is down when a scan for a push unit is accepted: the answer does not wait,
    and the relay publishes the copy, read from the package store, once the bus is back."""
    data = scanned_letter(stack, Organization(PUSH, "Sở Tư pháp"), 2)
    gateway = stack.runtime.gateway
    await stack.runtime.deliverer.stop(grace=1)
    await stack.runtime.bus.close(grace=1)
    async with GatewayClient(stack.url, stack.tokens[SENDER], timeout=60) as gw:
        submitted = await gw.submit(data)
    assert submitted.status == 202
    await gateway.drain()  # the publisher tried, and failed
    d = delivery_table.c
    query = select(d.published, d.transport).where(d.document_key == submitted.document_key)
    async with stack.runtime.ledger.engine.connect() as conn:
        assert tuple((await conn.execute(query)).one()) == (False, "accepted")
    await stack.runtime.bus.start()
    assert await gateway.publish_pending(older_than=0) == 1
    async with stack.runtime.ledger.engine.connect() as conn:
        assert tuple((await conn.execute(query)).one()) == (True, "queued")
    # On its unit's queue (the consumers are stopped, so it waits there).
    while (await stack.runtime.bus.counters([PUSH]))[PUSH].depth != 1:
        await asyncio.sleep(0.1)
