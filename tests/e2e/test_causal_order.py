"""Every copy's ledger events are in causal order (queued before delivered) when letters are
submitted and acknowledged at the same time, for inbox copies and for copies on the bus."""

from __future__ import annotations

import asyncio

from gatewaystack import PULL, PUSH, SENDER, Stack

from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import Organization
from gateway.ledger import EventType, Query

LETTERS = 40


async def test_queued_comes_before_delivered_under_concurrent_acknowledgement(
    stack: Stack,
) -> None:
    directory = stack.runtime.gateway.directory
    letters = [
        sign_as_unit(
            build_letter(
                unit(SENDER, directory),
                [Organization(PULL, "Sở Tài chính"), Organization(PUSH, "Sở Tư pháp")],
                f"Về việc thứ {n}",
                number=str(1000 + n),
            ),
            stack.keys,
        )
        for n in range(LETTERS)
    ]
    acked: set[str] = set()

    async def acknowledge_as_they_come() -> None:
        async with GatewayClient(stack.url, stack.tokens[PULL]) as gw:
            while len(acked) < LETTERS:
                for item in (await gw.inbox())["items"]:
                    await gw.ack(item["delivery_id"])
                    acked.add(item["document_key"])
                await asyncio.sleep(0.01)

    async def submit(data: bytes) -> str:
        async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
            return (await gw.submit(data)).document_key

    acker = asyncio.create_task(acknowledge_as_they_come())
    try:
        keys = await asyncio.gather(*(submit(d) for d in letters))
        await asyncio.wait_for(acker, 30)
    finally:
        acker.cancel()
    while len(stack.webhook.received) < LETTERS:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the webhook answered; let the bus report it

    for key in keys:
        entries = (await stack.runtime.ledger.query(Query(document=key))).entries
        for recipient in (PULL, PUSH):
            kinds = [e.event.type for e in entries if e.event.recipient == recipient]
            assert kinds == [EventType.QUEUED, EventType.DELIVERED], (key, recipient, kinds)
        assert entries[0].event.type is EventType.SUBMITTED
