"""A sender always learns the outcome: a copy that expires is noticed to its sender through the
sender's own delivery mode (a pull sender's notices, a push sender's webhook, an AMQP sender's
own queue on RabbitMQ), and both the notice and its arrival are in the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from gatewaystack import (
    NATIVE,
    PULL,
    PUSH,
    SENDER,
    Stack,
    Webhook,
    directory_csv,
    native_consume,
    open_stack,
)
from tcpproxy import TcpProxy

from gateway.cli import main
from gateway.client import GatewayClient, build_letter, build_status, sign_as_unit, unit
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


async def notified(stack: Stack, key: str, count: int = 1) -> list[Any]:
    """The ``notified`` entries of a letter, once there are ``count`` of them."""

    async def entries() -> list[Any]:
        found = (await stack.runtime.ledger.query(Query(document=key))).entries
        kept = [e for e in found if e.event.type is EventType.NOTIFIED]
        return kept if len(kept) >= count else []

    return list(await eventually(entries))


async def test_an_amqp_sender_is_told_on_its_own_queue(stack: Stack) -> None:
    """On RabbitMQ the notice comes on the sender's queue, notified when the broker confirmed
    it; on the embedded bus an AMQP unit is served by a pull inbox and reads its notices at
    GET /v1/notices."""
    key, copy = await send_urgent(stack, NATIVE, PULL)
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:

        async def waiting() -> list[dict[str, Any]]:
            return list((await gw.notices())["notices"])

        if stack.amqp_url is None:
            (item,) = await eventually(waiting)
            assert await gw.ack_notices([item["notice_id"]]) == 1
            via = "inbox"
        else:
            notice = await native_consume(stack, NATIVE, 20, kind="notice")
            item = json.loads(notice.body)
            assert notice.headers["gw-kind"] == "notice" and notice.id == item["notice_id"]
            assert notice.headers["gw-notice"] == "expired"
            assert "gw-delivery-id" not in notice.headers  # a notice is not a copy
            via = "amqp"
        (entry,) = await notified(stack, key)
        assert await waiting() == []  # it arrived: nothing waits
    assert set(item) == {
        "notice_id", "event", "delivery_id", "document_key", "recipient", "reason", "at"
    }  # fmt: skip
    assert (item["event"], item["delivery_id"], item["document_key"]) == ("expired", copy, key)
    assert item["recipient"] == PULL
    entries = (await stack.runtime.ledger.query(Query(document=key))).entries
    (expired,) = [e for e in entries if e.event.type is EventType.EXPIRED]
    assert expired.event.details["notice"] == item["notice_id"]
    assert (entry.event.sender, entry.event.recipient, entry.event.code) == (
        NATIVE,
        PULL,
        "expired",
    )
    details = {"notice_id": item["notice_id"], "delivery_id": copy, "via": via}
    assert entry.event.details == details
    if stack.amqp_url is None:
        return

    # An operator's redrive is told on the queue too.
    async with GatewayClient(stack.url, stack.tokens["operator"]) as op:
        assert await op.redrive(PULL, [copy]) == 1
    redriven = json.loads((await native_consume(stack, NATIVE, 20, kind="notice")).body)
    assert (redriven["event"], redriven["delivery_id"]) == ("redriven", copy)
    again = (await notified(stack, key, 2))[1]  # (a later expiry may add a third)
    assert (again.event.code, again.event.details["via"]) == ("redriven", "amqp")


async def test_a_unit_both_sender_and_recipient_reads_copies_and_notices_apart(
    stack: Stack,
) -> None:
    """On its queue, a notice about its own letter does not disturb the copies it receives:
    read in either order, each is what it says, and the copy is answered and delivered."""
    if stack.amqp_url is None:
        return  # the embedded bus serves an AMQP unit by a pull inbox (the test above)
    package = build_letter(unit(SENDER), [unit(NATIVE)], "Về việc họp giao ban")
    data = sign_as_unit(package, stack.keys)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        received = await gw.submit(data)
    incoming = received.answer["recipients"][0]["delivery_id"]
    key, copy = await send_urgent(stack, NATIVE, PULL)  # expires: a notice for NATIVE

    # The notice is asked for first: the copy ahead of it on the queue is kept, not lost.
    notice = await native_consume(stack, NATIVE, 20, kind="notice")
    assert json.loads(notice.body)["delivery_id"] == copy
    letter = await native_consume(stack, NATIVE, kind="copy")
    assert (
        letter.delivery_id == incoming
        and letter.headers["gw-document-key"] == received.document_key
    )
    assert letter.body == data
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:
        answer = build_status(unit(NATIVE), received.document_key, "01")
        await gw.submit(sign_as_unit(answer, stack.keys))

    async def delivered() -> bool:
        entries = (await stack.runtime.ledger.query(Query(document=received.document_key))).entries
        return any(
            e.event.type is EventType.DELIVERED and e.event.recipient == NATIVE for e in entries
        )

    assert await eventually(delivered)
    # Nothing of the notice reached the bus's own machinery for NATIVE.
    counters = (await stack.runtime.bus.counters([NATIVE]))[NATIVE]
    assert (counters.depth, counters.retrying, counters.dead) == (0, 0, 0)
    assert await stack.runtime.bus.dead_letters(NATIVE) == []
    (entry,) = await notified(stack, key)
    assert entry.event.details["via"] == "amqp"


async def test_a_notice_left_on_the_queue_of_a_unit_that_leaves_amqp_is_offered_again(
    stack: Stack,
) -> None:
    """A unit that stops reading its own queue (now pull) still gets the notice that waited
    there: the gateway's consumer of the queue hands it back, and it is listed again."""
    if stack.amqp_url is None:
        return  # no notice travels on the embedded bus
    key, copy = await send_urgent(stack, NATIVE, PULL)
    (first,) = await notified(stack, key)  # published on NATIVE's queue, nobody read it
    async with GatewayClient(stack.url, stack.tokens["operator"]) as op:
        await op.update_unit(NATIVE, {"delivery": "pull"})
    async with GatewayClient(stack.url, stack.tokens[NATIVE]) as gw:

        async def waiting() -> list[dict[str, Any]]:
            return list((await gw.notices())["notices"])

        (item,) = await eventually(waiting)
        assert (item["notice_id"], item["delivery_id"]) == (first.event.details["notice_id"], copy)
        assert await gw.ack_notices([item["notice_id"]]) == 1
    again = (await notified(stack, key, 2))[1]
    assert (again.event.details["notice_id"], again.event.details["via"]) == (
        item["notice_id"],
        "inbox",
    )


@pytest.fixture(params=["rabbitmq+postgresql"])
async def cut_off(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str], amqp_url: str
) -> AsyncIterator[tuple[Stack, TcpProxy]]:
    """A gateway whose broker is behind a proxy that can cut it off."""
    hook, hook_url = webhook
    port = int(amqp_url.rsplit(":", 1)[1].split("/")[0])
    async with TcpProxy(port) as proxy:
        proxied = amqp_url.replace(f":{port}/", f":{proxy.port}/")
        async with open_stack(
            request, tmp_path, hook, directory_csv(hook_url), amqp_url=proxied
        ) as stack:
            yield stack, proxy


async def test_a_notice_made_while_the_broker_is_away_is_published_when_it_is_back(
    cut_off: tuple[Stack, TcpProxy], amqp_url: str
) -> None:
    stack, proxy = cut_off
    key, copy = await send_urgent(stack, NATIVE, PULL)
    async with GatewayClient(stack.url, stack.tokens[PULL]) as gw:

        async def in_inbox() -> bool:
            return any(i["delivery_id"] == copy for i in (await gw.inbox())["items"])

        await eventually(in_inbox)  # the copy waits in PULL's inbox
    proxy.cut(9)  # it expires meanwhile (3 s), with the broker out of reach
    notices = stack.runtime.gateway.notices

    async def tried() -> bool:
        found, _ = await notices.waiting([NATIVE])
        return bool(found) and found[0].attempts >= 1

    assert await eventually(tried)  # the sweep tried, the notice waits
    assert not [e for e in (await stack.runtime.ledger.query(Query(document=key))).entries
                if e.event.type is EventType.NOTIFIED]  # fmt: skip
    stack.amqp_url = amqp_url  # the unit reads its queue on the broker itself
    notice = await native_consume(stack, NATIVE, 30, kind="notice")
    assert json.loads(notice.body)["delivery_id"] == copy
    (entry,) = await notified(stack, key)
    assert entry.event.details["via"] == "amqp"
