"""A scanned letter over HTTP: its body is spooled as it arrives, the copy fetched by the
recipient is the same bytes, and a body over the cap is refused while it streams in."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from gatewaystack import PULL, PUSH, SENDER, Stack
from sqlalchemy import select

from gateway.api.exchange import package_body
from gateway.client import GatewayClient, build_letter, make_attachment, sign_as_unit, unit
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
