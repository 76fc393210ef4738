"""A sender always learns the outcome: a copy that expires is noticed to its sender through the
sender's own delivery mode (a pull sender's notices, a push sender's webhook), and both the
notice and its arrival are in the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from click.testing import CliRunner
from gatewaystack import PULL, PUSH, SENDER, Stack

from gateway.cli import main
from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import Organization
from gateway.ledger import EventType, Query


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return result


async def send_urgent(stack: Stack, sender: str, to: str) -> tuple[str, str]:
    """An urgent letter (3 s to live in these tests) nobody fetches: its key and copy."""
    package = build_letter(unit(sender), [Organization(to, "Sở")], "Khẩn", priority=1)
    async with GatewayClient(stack.url, stack.tokens[sender]) as gw:
        submitted = await gw.submit(sign_as_unit(package, stack.keys))
    return submitted.document_key, submitted.answer["recipients"][0]["delivery_id"]


async def test_an_expired_copy_is_noticed_to_its_sender_by_its_own_mode(stack: Stack) -> None:
    pulled_key, pulled_copy = await send_urgent(stack, SENDER, PULL)
    pushed_key, pushed_copy = await send_urgent(stack, PUSH, PULL)
    ledger = stack.runtime.ledger

    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:

        async def waiting() -> list[dict[str, Any]]:
            return list((await gw.notices())["notices"])

        (notice,) = await eventually(waiting)
        assert (notice["event"], notice["delivery_id"]) == ("expired", pulled_copy)
        assert (notice["document_key"], notice["recipient"]) == (pulled_key, PULL)
        login = ["--url", stack.url, "--token", stack.tokens[SENDER]]
        listed = await asyncio.to_thread(
            CliRunner().invoke, main, ["inbox", "notices", *login, "--ack"]
        )
        assert listed.exit_code == 0, listed.output
        assert f"{notice['notice_id']}  expired  {PULL}  {pulled_copy}" in listed.output
        assert "1 notice (acknowledged)" in listed.output
        assert await gw.ack_notices([notice["notice_id"]]) == 0  # once
        assert (await gw.notices())["notices"] == []
    # An operator's redrive of the expired copy is noticed too.
    async with GatewayClient(stack.url, stack.tokens["operator"]) as op:
        assert await op.redrive(PULL, [pulled_copy]) == 1
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        (redriven,) = (await gw.notices())["notices"]
        assert (redriven["event"], redriven["delivery_id"]) == ("redriven", pulled_copy)
    entries = (await ledger.query(Query(document=pulled_key))).entries
    (expired,) = [e for e in entries if e.event.type is EventType.EXPIRED]
    (notified,) = [e for e in entries if e.event.type is EventType.NOTIFIED]
    assert expired.event.details["notice"] == notice["notice_id"]
    assert (notified.event.sender, notified.event.code) == (SENDER, "expired")
    assert notified.event.details["via"] == "inbox"

    # The push sender is told on its webhook, signed like a push, with no polling.
    def noticed() -> list[dict[str, str]]:
        return [h for h in stack.webhook.headers if h.get("x-gateway-notice") == "expired"]

    (headers,) = await eventually(lambda: asyncio.sleep(0, noticed()))
    assert headers["x-gateway-delivery-id"] == pushed_copy
    assert headers["webhook-signature"].startswith("v1,")
    (body,) = [b for d, b in stack.webhook.received if d == pushed_copy]
    assert json.loads(body)["document_key"] == pushed_key

    async def notified_by_webhook() -> list[Any]:
        entries = (await ledger.query(Query(document=pushed_key))).entries
        return [e for e in entries if e.event.type is EventType.NOTIFIED]

    (entry,) = await eventually(notified_by_webhook)
    assert (entry.event.sender, entry.event.details["via"]) == (PUSH, "webhook")
