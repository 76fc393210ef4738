"""Requests a hostile or careless client sends: each gets a clear 4xx with its code, at once,
and tells the caller nothing it may not know."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from gatewaystack import NATIVE, OUTSIDER, PULL, SENDER, Stack, Webhook, directory_csv, open_stack

from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    sign_as_unit,
    unit,
)
from gateway.config import ApiSettings
from gateway.envelope import Organization, build_package


@pytest.fixture(params=["embedded"])
async def strict_limits(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[Stack]:
    """Bodies must arrive within 1 s, and a token may send one package at a time."""
    hook, hook_url = webhook
    api = ApiSettings(body_timeout=1, uploads_per_token=1, uploads=2)
    async with open_stack(request, tmp_path, hook, directory_csv(hook_url), api) as opened:
        yield opened


@pytest.fixture(params=["rabbitmq+postgresql"])
async def brokered(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[Stack]:
    hook, hook_url = webhook
    async with open_stack(request, tmp_path, hook, directory_csv(hook_url)) as opened:
        yield opened


def letter(stack: Stack, *to: str, number: str = "7") -> bytes:
    recipients = [Organization(code, f"Đơn vị {code}") for code in to]
    package = build_letter(unit(SENDER), recipients, "Về việc kiểm thử", number=number)
    return sign_as_unit(package, stack.keys)


async def answer(
    stack: Stack,
    method: str,
    path: str,
    who: str = SENDER,
    *,
    data: bytes | str | None = None,
    content_type: str | None = None,
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {stack.tokens[who]}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, stack.url + path, headers=headers, data=data) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/inbox?after=99999999999999999999999",
        "/v1/inbox?after=-1",
        "/v1/ledger/entries?after=99999999999999999999999",
        "/v1/ledger/entries?limit=99999999999999999999999",
        "/v1/ledger/consistency?from=1&to=99999999999999999999999",
    ],
)
async def test_an_integer_out_of_range_is_a_bad_request(embedded: Stack, path: str) -> None:
    who = "auditor" if "consistency" in path else SENDER
    status, body = await answer(embedded, "GET", path, who)
    assert (status, body["code"]) == (400, "bad_request")


async def test_json_nested_past_reading_is_a_bad_request(embedded: Stack) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    status, body = await answer(
        embedded,
        "POST",
        "/v1/inbox/d-none/ack",
        PULL,
        data=deep,
        content_type="application/json",
    )
    assert (status, body["code"]) == (400, "bad_request")


async def test_a_package_sent_as_another_type_is_refused(embedded: Stack) -> None:
    status, body = await answer(
        embedded,
        "POST",
        "/v1/packages",
        data=letter(embedded, PULL),
        content_type="application/json",
    )
    assert (status, body["code"]) == (415, "unsupported_media_type")
    assert "application/xml" in str(body["detail"])


async def test_no_receipt_for_a_unit_that_was_not_a_recipient(embedded: Stack) -> None:
    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        key = (await gw.submit(letter(embedded, PULL))).document_key
    for stranger in (OUTSIDER, "999.99.99.Z99"):
        path = f"/v1/ledger/receipts?document={quote(key, safe='')}&recipient={stranger}"
        status, body = await answer(embedded, "GET", path, "auditor")
        assert (status, body["code"]) == (404, "not_found"), stranger
    path = f"/v1/ledger/receipts?document={quote(key, safe='')}&recipient={PULL}"
    assert (await answer(embedded, "GET", path, "auditor"))[0] == 200


async def test_readiness_tells_no_internals(embedded: Stack) -> None:
    await embedded.runtime.ledger.engine.dispose()
    embedded.runtime.ledger.engine.sync_engine.pool._creator = _refuse  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as session, session.get(embedded.url + "/readyz") as r:
        status, body = r.status, await r.json()
    assert status == 503
    assert body == {"ready": False, "database": "unavailable", "bus": "ok"}


def _refuse() -> object:
    raise OSError("secret internal detail: /var/lib/gateway/ledger.db is locked")


async def started(
    stack: Stack, path: str, length: int, sent: bytes, who: str = SENDER, kind: str = "xml"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose headers promise ``length`` bytes of body, of which ``sent`` is sent."""
    url = urlsplit(stack.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {stack.tokens[who]}\r\n"
        f"Content-Type: application/{kind}\r\nContent-Length: {length}\r\n\r\n".encode()
        + sent
    )
    await writer.drain()
    return reader, writer


async def status_of(reader: asyncio.StreamReader, within: float = 5) -> int:
    status_line = await asyncio.wait_for(reader.readline(), timeout=within)
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    ("path", "kind", "code"),
    [("/v1/packages", "xml", 413), ("/v1/inbox/d-none/ack", "json", 413)],
)
async def test_a_declared_body_over_the_limit_is_refused_without_waiting(
    embedded: Stack, path: str, kind: str, code: int
) -> None:
    reader, writer = await started(embedded, path, 99_999_999_999, b"<" * 1024, PULL, kind)
    assert await status_of(reader) == code
    writer.close()


@pytest.mark.parametrize(("path", "kind"), [("/v1/packages", "xml"), ("/v1/admin/units", "json")])
async def test_a_body_that_does_not_arrive_in_time_is_refused(
    strict_limits: Stack, path: str, kind: str
) -> None:
    who = SENDER if kind == "xml" else "operator"
    reader, writer = await started(strict_limits, path, 5000, b"<edXML", who, kind)
    assert await status_of(reader, within=4) == 408
    writer.close()


async def test_a_token_sends_so_many_packages_at_once(strict_limits: Stack) -> None:
    _, stalled = await started(strict_limits, "/v1/packages", 5000, b"<edXML")
    await asyncio.sleep(0.2)  # the first upload is being received
    async with GatewayClient(strict_limits.url, strict_limits.tokens[SENDER]) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.submit(letter(strict_limits, PULL))
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")
    async with GatewayClient(strict_limits.url, strict_limits.tokens[PULL]) as gw:
        with pytest.raises(ApiError) as other:  # another token is not held back...
            await gw.submit(letter(strict_limits, PULL))
    assert other.value.code == "forbidden"  # ...only refused for what it sends
    stalled.close()


async def test_an_unsigned_status_relayed_by_an_operator_is_no_proof_of_arrival(
    brokered: Stack,
) -> None:
    """An AMQP unit is heard from only by its statuses: its own signed status proves that its
    copy arrived, a relayed unsigned one does not."""
    async with GatewayClient(brokered.url, brokered.tokens[SENDER]) as gw:
        key = (await gw.submit(letter(brokered, NATIVE))).document_key
    relayed = build_package(build_status(unit(NATIVE), key, "01"))  # unsigned
    async with GatewayClient(brokered.url, brokered.tokens["operator"]) as gw:
        await gw.submit(relayed, profile="compat")
        view = await gw.document(key)
    (native,) = view["recipients"]
    assert native["transport"] != "delivered"
    assert [s["code"] for s in native["statuses"]] == ["01"]
    async with GatewayClient(brokered.url, brokered.tokens[NATIVE]) as gw:
        await gw.submit(sign_as_unit(build_status(unit(NATIVE), key, "03"), brokered.keys))
        view = await gw.document(key)
    assert view["recipients"][0]["transport"] == "delivered"
