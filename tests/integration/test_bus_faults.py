"""Faults against the real broker: RabbitMQ restarted (``rabbitmqctl stop_app``/``start_app``) in
the middle of a publish loop and of a consume loop, and a consumer process killed between
handling a delivery and acknowledging it. Every confirmed delivery must arrive at least once,
and the delivery id lets the consumer act on each exactly once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiormq
import pytest

from gateway.bus import AmqpBus, ClaimStore, Delivery, LocalBus, Message, RetryPolicy

POLICY = RetryPolicy.of_seconds([0.2], ttl=300)
UNITS = ["000.00.01.H07", "000.00.02.H07", "000.00.03.H07", "000.00.04.H07"]


def restart_broker(url: str) -> None:
    """Restart the RabbitMQ application inside its running node (keeps its open-file limit),
    and wait until it can create quorum queues again, so that later tests find it whole."""
    for args in (["stop_app"], ["start_app"], ["await_startup", "--timeout", "120"]):
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=180)
    asyncio.run(_until_quorum_queues_work(url))


async def _until_quorum_queues_work(url: str) -> None:
    probe = f"probe{uuid.uuid4().hex[:10]}"
    async with asyncio.timeout(120):
        while True:
            try:
                conn = await aio_pika.connect(url)
                try:
                    ch = await conn.channel()
                    arguments = {"x-queue-type": "quorum"}
                    await ch.declare_queue(probe, durable=True, arguments=arguments)
                    await ch.queue_delete(probe)
                    return
                finally:
                    await conn.close()
            except (aiormq.exceptions.AMQPError, OSError):
                await asyncio.sleep(0.5)


@pytest.fixture
def rabbitmqctl(amqp_url: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not on PATH: cannot restart the broker"
        if os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def amqp_bus(amqp_url: str, tmp_path: Path, rabbitmqctl: None) -> AsyncIterator[AmqpBus]:
    bus = AmqpBus(
        amqp_url,
        namespace=f"fault{uuid.uuid4().hex[:10]}",
        claims=ClaimStore(tmp_path / "claims"),
        policy=POLICY,
        publish_timeout=150,
        reconnect_interval=0.5,
    )
    await bus.start()
    await bus.declare(UNITS)
    yield bus
    await bus.close(grace=0)
    await bus.destroy(UNITS)


def delivery(i: int) -> Delivery:
    unit = UNITS[i % len(UNITS)]
    return Delivery(f"del-{i}", f"doc-{i}", unit, b"x" * 4096)


class DedupingConsumer:
    """What a real consumer does with the dedupe key: act once per delivery id."""

    def __init__(self, work: float = 0.002) -> None:
        self.work = work
        self.received: list[str] = []
        self.acted: set[str] = set()
        self.actions = 0
        self.changed = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        await asyncio.sleep(self.work)
        self.received.append(message.delivery_id)
        if message.delivery_id not in self.acted:
            self.acted.add(message.delivery_id)
            self.actions += 1
        self.changed.set()

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not ids <= self.acted:
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.amqp
async def test_every_confirmed_publish_survives_a_broker_restart(amqp_bus: AmqpBus) -> None:
    confirmed: list[str] = []
    restarted = asyncio.Event()
    counter = iter(range(1_000_000))

    async def publisher() -> None:
        extra = 0
        while extra < 100:
            d = delivery(next(counter))
            await amqp_bus.publish(d)
            confirmed.append(d.delivery_id)
            if restarted.is_set():
                extra += 1
            await asyncio.sleep(0.002)

    publishers = [asyncio.create_task(publisher()) for _ in range(4)]
    while len(confirmed) < 100:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(restart_broker, amqp_bus.url)
    restarted.set()
    await asyncio.wait_for(asyncio.gather(*publishers), 150)

    consumer = DedupingConsumer()
    for unit in UNITS:
        await amqp_bus.consume(unit, consumer)
    await consumer.wait_for(set(confirmed), timeout=60)
    await asyncio.sleep(0.5)
    assert consumer.acted == set(confirmed)
    assert consumer.actions == len(confirmed)
    assert len(consumer.received) >= len(confirmed)


@pytest.mark.amqp
async def test_consumers_go_on_after_a_broker_restart(amqp_bus: AmqpBus) -> None:
    published = [delivery(i) for i in range(2000)]
    await amqp_bus.publish_many(published)
    ids = {d.delivery_id for d in published}
    consumer = DedupingConsumer(work=0.01)
    for unit in UNITS:
        await amqp_bus.consume(unit, consumer, prefetch=2)
    while len(consumer.acted) < 100:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(restart_broker, amqp_bus.url)
    assert len(consumer.acted) < len(ids)  # the restart did interrupt the consumers
    await consumer.wait_for(ids, timeout=120)
    assert consumer.acted == ids
    assert consumer.actions == len(ids)
    counters = await amqp_bus.counters(UNITS)
    await asyncio.sleep(0.3)
    assert sum(c.depth + c.retrying + c.dead for c in counters.values()) == 0


CRASHING_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.bus import AmqpBus, ClaimStore, LocalBus, RetryPolicy

    async def main(kind, target, namespace, unit, claims_dir):
        policy = RetryPolicy.of_seconds([0.2], ttl=300)
        claims = ClaimStore(Path(claims_dir))
        if kind == "amqp":
            bus = AmqpBus(target, namespace=namespace, claims=claims, policy=policy)
        else:
            bus = LocalBus(Path(target), claims=claims, policy=policy, lease=1, poll_interval=0.05)
        await bus.start()

        async def handler(message):
            print("HANDLED", message.delivery_id, flush=True)
            await asyncio.Event().wait()  # killed here: handled, never acknowledged

        await bus.consume(unit, handler)
        await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.fixture(params=[pytest.param("amqp", marks=pytest.mark.amqp), "local"])
async def crash_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[list[str], AmqpBus | LocalBus]]:
    """The crashing consumer's arguments, and a bus of the same kind on the same queues."""
    claims = ClaimStore(tmp_path / "claims")
    bus: AmqpBus | LocalBus
    if request.param == "amqp":
        url = request.getfixturevalue("amqp_url")
        namespace = f"crash{uuid.uuid4().hex[:10]}"
        bus = AmqpBus(url, namespace=namespace, claims=claims, policy=POLICY)
        args = ["amqp", url, namespace]
    else:
        path = tmp_path / "bus.db"
        bus = LocalBus(path, claims=claims, policy=POLICY, lease=1, poll_interval=0.05)
        args = ["local", str(path), "-"]
    await bus.start()
    await bus.declare(UNITS[:1])
    yield [*args, UNITS[0], str(claims.root)], bus
    await bus.close(grace=0)
    if isinstance(bus, AmqpBus):
        await bus.destroy(UNITS[:1])


async def test_a_consumer_killed_before_its_ack_gets_the_delivery_back(
    crash_target: tuple[list[str], AmqpBus | LocalBus],
) -> None:
    args, bus = crash_target
    await bus.publish(delivery(0))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_CONSUMER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.decode().split() == ["HANDLED", "del-0"]
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    consumer = DedupingConsumer()
    received: list[Message] = []

    async def handler(message: Message) -> None:
        received.append(message)
        await consumer(message)

    await bus.consume(UNITS[0], handler)
    await consumer.wait_for({"del-0"}, timeout=30)
    assert [(m.delivery_id, m.attempt, m.redelivered) for m in received] == [("del-0", 1, True)]
