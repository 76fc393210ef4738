"""A unit's system waiting for its next copy (``GET /v1/inbox?wait=``), on the embedded stack and
on RabbitMQ + PostgreSQL: answered as soon as a copy is placed in the inbox, empty when its time
is up, at once when the gateway stops."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from gatewaystack import PULL, SENDER, Stack

from gateway.client import ApiError, GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import Organization


def letter(stack: Stack, subject: str, **options: Any) -> bytes:
    package = build_letter(unit(SENDER), [Organization(PULL, "Sở Tài chính")], subject, **options)
    return sign_as_unit(package, stack.keys)


async def expired(stack: Stack, key: str) -> bool:
    async with GatewayClient(stack.url, stack.tokens["operator"]) as gw:
        view = await gw.document(key)
    return bool(view["recipients"][0]["transport"] == "expired")


async def waiting_poll(stack: Stack, wait: int) -> asyncio.Task[dict[str, object]]:
    """PULL's system asking for its inbox with ``wait``, still waiting half a second later."""

    async def poll() -> dict[str, object]:
        async with GatewayClient(stack.url, stack.tokens[PULL]) as gw:
            return await gw.inbox(wait=wait)

    task = asyncio.create_task(poll())
    await asyncio.sleep(0.5)
    assert not task.done(), "the empty inbox answered before its wait"
    return task


async def test_a_waiting_system_is_answered_when_a_copy_is_placed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a wake-up can answer within the test: the periodic second look is an hour away.
    monkeypatch.setattr(stack.runtime.wakeups, "recheck", 3600.0)
    poll = await waiting_poll(stack, wait=30)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        key = (await gw.submit(letter(stack, "Về việc chờ nhận"))).document_key
    page = await asyncio.wait_for(poll, 20)
    [item] = page["items"]  # type: ignore[misc]
    assert item["document_key"] == key


async def test_a_redriven_copy_wakes_a_waiting_system(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.runtime.wakeups, "recheck", 3600.0)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:  # urgent: 3 s to live
        key = (await gw.submit(letter(stack, "Về việc khẩn", number="95", priority=1))).document_key
    deadline = time.monotonic() + 20
    while not await expired(stack, key):
        assert time.monotonic() < deadline, "the copy did not expire"
        await asyncio.sleep(0.2)
    poll = await waiting_poll(stack, wait=30)
    async with GatewayClient(stack.url, stack.tokens["operator"]) as gw:
        assert await gw.redrive(PULL) == 1
    page = await asyncio.wait_for(poll, 20)
    assert [i["document_key"] for i in page["items"]] == [key]  # type: ignore[attr-defined]


async def test_a_wait_ends_empty_when_its_time_is_up(
    embedded: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with GatewayClient(embedded.url, embedded.tokens[PULL]) as gw:
        started = time.monotonic()
        page = await gw.inbox(wait=1)
        assert page["items"] == [] and time.monotonic() - started >= 1.0
        # GATEWAY_API_LONG_POLL=0: the gateway does not hold polls, whatever they ask
        settings = embedded.runtime.settings
        monkeypatch.setattr(
            embedded.runtime, "settings", replace(settings, api=replace(settings.api, long_poll=0))
        )
        page = await asyncio.wait_for(gw.inbox(wait=30), 5)
        assert page["items"] == []
        for wrong in ("31", "-1", "soon"):
            with pytest.raises(ApiError) as refused:
                await gw._json("GET", "/v1/inbox", params={"wait": wrong})
            assert (refused.value.status, refused.value.code) == (400, "bad_request")


async def test_waiting_systems_are_answered_at_once_when_the_gateway_stops(
    embedded: Stack,
) -> None:
    poll = await waiting_poll(embedded, wait=30)
    embedded.runtime.stopping()  # what the server does before its grace for open requests
    page = await asyncio.wait_for(poll, 5)
    assert page["items"] == []
