"""Senders' notices on RabbitMQ: a notice published on a unit's own queue is persistent and
confirmed, carries its kind, and is never taken for a copy by the bus: not by a gateway
consumer of that queue (no handler, no transition, no dead letter: handed to ``on_notice``),
nor by the counters, the dead letters or a redrive."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from tcpproxy import TcpProxy

from gateway.bus import AmqpBus, ClaimStore, Delivery, Message, RetryPolicy, Transition
from gateway.errors import GatewayError

pytestmark = pytest.mark.amqp

POLICY = RetryPolicy.of_seconds([0.2], ttl=30)
UNIT = "000.01.20.H07"
OTHER = "000.01.21.H07"
NOTICE = {"notice_id": "n-1", "event": "expired", "delivery_id": "d-9"}


class Seen:
    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.notices: list[tuple[str, str]] = []
        self.copies: list[Message] = []

    async def observe(self, t: Transition) -> None:
        self.transitions.append(t)

    async def on_notice(self, unit: str, notice_id: str) -> None:
        self.notices.append((unit, notice_id))

    async def handle(self, message: Message) -> None:
        self.copies.append(message)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def bus(amqp_url: str, tmp_path: Path, seen: Seen) -> AsyncIterator[AmqpBus]:
    bus = AmqpBus(
        amqp_url,
        namespace=f"ntc{uuid.uuid4().hex[:10]}",
        claims=ClaimStore(tmp_path / "claims"),
        policy=POLICY,
        observer=seen.observe,
        on_notice=seen.on_notice,
    )
    await bus.start()
    await bus.declare([UNIT, OTHER])
    yield bus
    await bus.close(grace=0)
    await bus.destroy([UNIT, OTHER])


async def test_a_notice_is_a_persistent_message_of_its_own_kind(
    bus: AmqpBus, amqp_url: str
) -> None:
    body = json.dumps(NOTICE).encode()
    await bus.publish_notice(UNIT, "n-1", "expired", body)
    async with await aio_pika.connect(amqp_url) as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(bus.topology.unit_queue(UNIT), passive=True)
        message = await queue.get(timeout=5)
        await message.ack()
    assert message.body == body and message.message_id == "n-1"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert {k: v for k, v in message.headers.items() if not k.startswith("x-")} == {
        "gw-kind": "notice",
        "gw-notice-id": "n-1",
        "gw-notice": "expired",
    }


async def test_a_gateway_consumer_hands_a_notice_aside_and_never_dead_letters_it(
    bus: AmqpBus, seen: Seen
) -> None:
    await bus.publish_notice(UNIT, "n-1", "expired", json.dumps(NOTICE).encode())
    await bus.publish(Delivery("d-1", "doc-1", UNIT, b"<letter/>"))
    subscription = await bus.consume(UNIT, seen.handle)
    async with asyncio.timeout(10):
        while not (seen.copies and seen.notices):
            await asyncio.sleep(0.05)
    await subscription.stop()
    assert [m.delivery_id for m in seen.copies] == ["d-1"]
    assert seen.notices == [(UNIT, "n-1")]
    assert [(t.outcome.value, t.delivery_id) for t in seen.transitions] == [
        ("queued", "d-1"),
        ("delivered", "d-1"),
    ]
    counters = await bus.counters([UNIT])
    assert (counters[UNIT].depth, counters[UNIT].retrying, counters[UNIT].dead) == (0, 0, 0)
    assert await bus.dead_letters(UNIT) == []
    assert await bus.redrive(UNIT) == 0


async def test_a_notice_for_a_unit_without_a_queue_is_unknown_recipient(bus: AmqpBus) -> None:
    with pytest.raises(GatewayError) as e:
        await bus.publish_notice("000.09.99.H07", "n-2", "expired", b"{}")
    assert e.value.code == "unknown_recipient"


async def test_a_notice_not_confirmed_in_time_is_bus_unavailable(
    amqp_url: str, tmp_path: Path
) -> None:
    """The caller keeps the notice and tries again: it is published once the broker is back."""
    port = int(amqp_url.rsplit(":", 1)[1].split("/")[0])
    async with TcpProxy(port) as proxy:
        bus = AmqpBus(
            amqp_url.replace(f":{port}/", f":{proxy.port}/"),
            namespace=f"ntc{uuid.uuid4().hex[:10]}",
            claims=ClaimStore(tmp_path / "claims"),
            policy=POLICY,
            connect_timeout=1,
            reconnect_interval=0.2,
        )
        await bus.start()
        try:
            await bus.declare([UNIT])
            proxy.cut(3)
            with pytest.raises(GatewayError) as e:
                await bus.publish_notice(UNIT, "n-3", "redriven", b"{}")
            assert e.value.code == "bus_unavailable"
            await asyncio.sleep(3)
            await bus.publish_notice(UNIT, "n-3", "redriven", b"{}")  # the broker is back
            assert (await bus.counters([UNIT]))[UNIT].depth == 1
        finally:
            await bus.close(grace=0)
            await bus.destroy([UNIT])
