"""A publish the broker refuses (a nack) is tried again on a new channel, at most once a
second, until the publish timeout; the bus publishes normally afterwards. (On a cluster, a
node was seen refusing one channel's publishes to queues whose leader had just moved.)"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import aio_pika
import pytest

from gateway.bus import AmqpBus, ClaimStore, Delivery, RetryPolicy
from gateway.errors import GatewayError

pytestmark = pytest.mark.amqp

POLICY = RetryPolicy.of_seconds([0.2], ttl=30)
REFUSING = "000.01.20.H07"
OTHER = "000.01.21.H07"


async def test_a_refused_publish_is_tried_again_on_a_new_channel(
    amqp_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = AmqpBus(
        amqp_url,
        namespace=f"nack{uuid.uuid4().hex[:10]}",
        claims=ClaimStore(tmp_path / "claims"),
        policy=POLICY,
        publish_timeout=3.5,
    )
    await bus.start()
    await bus.declare([OTHER])
    async with await aio_pika.connect(amqp_url) as conn:
        channel = await conn.channel()
        # A queue with no room that refuses what comes: every publish routed to it is nacked.
        full = await channel.declare_queue(
            f"{bus.topology.namespace}.full",
            auto_delete=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(bus.topology.deliver_exchange, routing_key=REFUSING)
        try:
            with (
                caplog.at_level(logging.WARNING, logger="gateway.bus.amqp"),
                pytest.raises(GatewayError) as refused,
            ):
                await bus.publish(Delivery("d-1", "doc-1", REFUSING, b"<letter/>"))
            assert refused.value.code == "bus_unavailable"
            renewals = [r for r in caplog.records if "new channel" in r.getMessage()]
            assert 2 <= len(renewals) <= 4  # once a second over 3.5 s, not once per attempt
            await bus.publish(Delivery("d-2", "doc-2", OTHER, b"<letter/>"))  # the new channel
            counters = await bus.counters([OTHER])
            assert counters[OTHER].depth == 1
        finally:
            await full.delete(if_unused=False, if_empty=False)
            await bus.close(grace=0)
            await bus.destroy([OTHER])
