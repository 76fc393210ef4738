"""Faults under a steady load of letters and of recipients taking them, through a running
`gateway serve` on a RabbitMQ node and a PostgreSQL of the suite's own: the broker restarted
with a backlog of over 1,000 copies and killed mid-publish, PostgreSQL restarted, the gateway
(and one of its workers) killed, the broker cut off through a proxy, a push endpoint down past
its retry schedule and past the time-to-live. After each, the checks of tests/faults/harness.py:
nothing accepted is missing or delivered twice, the ledger verifies, the events of every copy
are in causal order, and no submission waited longer than the case's bound (BOUND_*)."""

from __future__ import annotations

import asyncio
import os
import time

import aio_pika
from gatewaystack import Webhook
from harness import (
    NATIVE,
    PULL,
    PUSH,
    Figures,
    Load,
    MakeGateway,
    TcpProxy,
    check_ledger,
    check_received,
    running,
    stop_submitting,
    wait_delivered,
)
from services import PostgresInstance, RabbitNode

from gateway.client import GatewayClient
from gateway.ledger import EventType

MIXED = (PULL[0], PULL[1], PUSH, NATIVE[0])
# How long the broker is cut off through the proxy: 30 s asks the gateway to ride out half of
# its publish timeout; CI uses 10 s to keep the suite short (GATEWAY_TEST_FAULT_OUTAGE=30).
OUTAGE = float(os.environ.get("GATEWAY_TEST_FAULT_OUTAGE", "10"))
# The longest any submission may wait on a fault, per case (seconds).
BOUND_BROKER = 30.0  # a node's restart: 5 s idle, up to 20 s with 1,000 copies under load
BOUND_DATABASE = 15.0  # PostgreSQL is down for 3 s; connect timeout 5 s
BOUND_KILLED = 10.0  # a dead gateway refuses connections at once
BOUND_CUT = OUTAGE + 15.0
BOUND_PUSH = 10.0  # a push endpoint's outage is not the sender's wait
BOUND_STOP = 20.0  # SIGTERM to exit: the grace (5 s) for requests, then as much again to close


async def waiting_in(amqp_url: str, namespace: str, codes: tuple[str, ...]) -> int:
    """Copies ready in the AMQP units' queues (a passive declare's count)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        total = 0
        for code in codes:
            queue = await channel.declare_queue(f"{namespace}.unit.{code}", passive=True)
            total += queue.declaration_result.message_count or 0
        return total


async def until(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def finish(load: Load, webhook: Webhook, figures: Figures, bound: float) -> Figures:
    """Stop offering letters, let every recipient catch up, and make the checks."""
    await stop_submitting(load)
    load.natives_on.set()
    figures.caught_up = await wait_delivered(load, webhook)
    figures.entries, _ = await check_ledger(load)
    check_received(load)
    figures.accepted = len(load.accepted)
    figures.refused = sum(load.refused.values())
    figures.longest_wait = max(load.waits)
    print(figures.line(), dict(load.refused))
    assert figures.longest_wait <= bound, (figures.longest_wait, bound)
    # refusals during a fault say what is wrong (503 with a code), never an internal error
    assert "internal_error" not in load.refused, dict(load.refused)
    return figures


async def test_broker_restart_with_a_backlog_of_a_thousand_copies(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """Four AMQP units whose consumers are away: 1,000 copies wait in their queues when the
    broker stops and starts again, under load; then the consumers come and find every one."""
    gateway = await make_gateway(fault_rabbit.url)
    load = Load(gateway, fault_rabbit.url, (PULL[0], *NATIVE), rate=40)
    figures = Figures("broker restart, backlog")
    async with running(load, natives=False):
        backlog = 0
        for _ in range(600):  # until 1,000 copies wait (the relay publishes behind the answers)
            backlog = await waiting_in(fault_rabbit.url, gateway.namespace, NATIVE)
            if backlog >= 1000:
                break
            await asyncio.sleep(0.1)
        assert backlog >= 1000
        started = time.monotonic()
        await asyncio.to_thread(fault_rabbit.stop)
        await asyncio.to_thread(fault_rabbit.start)
        figures.fault_seconds = time.monotonic() - started
        await asyncio.sleep(3)
        figures.extra = f"({backlog} copies waiting at the restart)"
        await finish(load, webhook[0], figures, BOUND_BROKER)


async def test_broker_killed_mid_publish(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """SIGKILL to the broker while letters are being published, and a start a moment later."""
    gateway = await make_gateway(fault_rabbit.url)
    load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
    figures = Figures("broker killed mid-publish")
    async with running(load):
        await until(lambda: len(load.accepted) >= 40)
        started = time.monotonic()
        await asyncio.to_thread(fault_rabbit.kill)
        await asyncio.sleep(1)
        await asyncio.to_thread(fault_rabbit.start)
        figures.fault_seconds = time.monotonic() - started
        await asyncio.sleep(3)
        await finish(load, webhook[0], figures, BOUND_BROKER)


async def test_postgresql_restart(
    make_gateway: MakeGateway,
    fault_rabbit: RabbitNode,
    fault_postgres: PostgresInstance,
    webhook: tuple[Webhook, str],
) -> None:
    """PostgreSQL stopped (fast: connections cut) for 3 s under load, then started."""
    gateway = await make_gateway(fault_rabbit.url)
    load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
    figures = Figures("PostgreSQL restart")
    async with running(load):
        await until(lambda: len(load.accepted) >= 40)
        started = time.monotonic()
        await asyncio.to_thread(fault_postgres.stop)
        try:
            await asyncio.sleep(3)
        finally:
            await asyncio.to_thread(fault_postgres.start)
        figures.fault_seconds = time.monotonic() - started
        await asyncio.sleep(3)
        await finish(load, webhook[0], figures, BOUND_DATABASE)


async def test_gateway_killed_and_started_again(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """SIGKILL to the gateway under load, and `gateway serve` again on the same port."""
    gateway = await make_gateway(fault_rabbit.url)
    load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
    figures = Figures("gateway killed")
    async with running(load):
        await until(lambda: len(load.accepted) >= 40)
        started = time.monotonic()
        gateway.kill()
        await gateway.start()
        figures.fault_seconds = time.monotonic() - started
        await asyncio.sleep(3)
        await finish(load, webhook[0], figures, BOUND_KILLED)


async def test_one_worker_killed(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """`gateway serve --workers 2`: SIGKILL to one worker. The supervisor stops the other
    gracefully and exits 1 (a half-dead gateway would hide the fault); started again."""
    gateway = await make_gateway(fault_rabbit.url, workers=2)
    load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
    figures = Figures("one of two workers killed")
    async with running(load):
        await until(lambda: len(load.accepted) >= 40)
        started = time.monotonic()
        assert await asyncio.to_thread(gateway.kill_one_worker) == 1
        await gateway.start()
        figures.fault_seconds = time.monotonic() - started
        await asyncio.sleep(3)
        await finish(load, webhook[0], figures, BOUND_KILLED)


async def test_broker_cut_off_through_a_proxy(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """Every connection between the gateway and RabbitMQ dropped, and new ones refused, for
    OUTAGE seconds under load."""
    async with TcpProxy(fault_rabbit.port) as proxy:
        gateway = await make_gateway(f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
        figures = Figures(f"broker cut off {OUTAGE:.0f} s")
        async with running(load):
            await until(lambda: len(load.accepted) >= 40)
            proxy.cut(OUTAGE)
            await asyncio.sleep(OUTAGE + 3)
            figures.fault_seconds = OUTAGE
            await finish(load, webhook[0], figures, BOUND_CUT)
        await gateway.stop()  # while the proxy still runs: the broker stays reachable


async def test_push_endpoint_down_past_its_retry_schedule(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """The push unit's endpoint answers 503 for 6 s, longer than the retry schedule (1 s, 2 s,
    the last step repeating); then every copy arrives."""
    hook = webhook[0]
    gateway = await make_gateway(fault_rabbit.url)
    load = Load(gateway, fault_rabbit.url, MIXED, rate=15)
    figures = Figures("push endpoint down 6 s")
    async with running(load):
        await until(lambda: len(load.accepted) >= 30)
        hook.status = 503
        await asyncio.sleep(6)
        hook.status = 200
        figures.fault_seconds = 6
        figures.extra = f"({hook.refused} calls refused)"
        await asyncio.sleep(2)
        await finish(load, hook, figures, BOUND_PUSH)
    assert hook.refused > 0


async def test_push_endpoint_down_past_the_ttl_then_redriven(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode, webhook: tuple[Webhook, str]
) -> None:
    """The push unit's endpoint down longer than the time-to-live (5 s): the copies sent while
    it is down expire; back up, an operator redrives them and each arrives."""
    hook = webhook[0]
    gateway = await make_gateway(fault_rabbit.url, GATEWAY_BUS_TTL="5")
    load = Load(gateway, fault_rabbit.url, (PULL[0], PUSH), rate=10)
    figures = Figures("push endpoint down past the TTL, redriven")
    async with running(load):
        await until(lambda: len(load.accepted) >= 20)
        hook.status = 503
        await asyncio.sleep(4)
        await stop_submitting(load)
        await asyncio.sleep(8)  # past the TTL of the last copy sent
        hook.status = 200
        async with GatewayClient(gateway.url, load.tokens["operator"]) as gw:
            redriven = await gw.redrive(PUSH)
        figures.fault_seconds = 12
        figures.extra = f"({redriven} expired copies redriven)"
        await finish(load, hook, figures, BOUND_PUSH)
    _, events = await check_ledger(load)
    expired = [d for d in load.accepted if EventType.EXPIRED in events[(d, PUSH)]]
    assert redriven > 0 and len(expired) == redriven


async def test_a_gateway_stops_while_the_broker_is_cut_off(
    make_gateway: MakeGateway, fault_rabbit: RabbitNode
) -> None:
    """SIGTERM while every connection to RabbitMQ is refused: the gateway still stops within
    its grace period and a margin, instead of waiting for the broker to come back."""
    async with TcpProxy(fault_rabbit.port) as proxy:
        gateway = await make_gateway(f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        proxy.cut(600)
        await asyncio.sleep(2)  # the gateway has noticed and is reconnecting
        assert gateway.process is not None
        started = time.monotonic()
        gateway.process.terminate()
        status = await asyncio.to_thread(gateway.process.wait, 60)
        took = time.monotonic() - started
    print(f"\nstopped in {took:.1f} s with the broker cut off (grace 5 s)")
    assert status == 0
    assert took < BOUND_STOP
