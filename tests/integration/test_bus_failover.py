"""An AMQP URL naming several hosts, against the real broker behind two TCP hops (what the
nodes of a cluster look like to the gateway): the bus starts on the first host that answers,
and when its host goes away it reconnects to the other, its consumer with it; every confirmed
delivery arrives."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tcpproxy import TcpProxy

from gateway.bus import AmqpBus, ClaimStore, Delivery, Message, RetryPolicy
from gateway.bus.amqp import FailoverConnection
from gateway.errors import GatewayError

POLICY = RetryPolicy.of_seconds([0.2], ttl=300)
UNIT = "000.00.01.H07"


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_port(amqp_url: str) -> int:
    return urlsplit(amqp_url).port or 5672


def url_of(amqp_url: str, ports: list[int]) -> str:
    parts = urlsplit(amqp_url)
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return f"amqp://{parts.username}:{parts.password}@{hosts}{parts.path or '/'}"


@contextlib.asynccontextmanager
async def started(url: str, tmp_path: Path) -> AsyncIterator[AmqpBus]:
    bus = AmqpBus(
        url,
        namespace=f"failover{uuid.uuid4().hex[:10]}",
        claims=ClaimStore(tmp_path / "claims"),
        policy=POLICY,
        reconnect_interval=0.5,
        connect_timeout=3,
    )
    await bus.start()
    try:
        await bus.declare([UNIT])
        yield bus
    finally:
        await bus.close(grace=0)
        with contextlib.suppress(GatewayError):
            await bus.destroy([UNIT])


async def test_the_bus_starts_on_the_first_host_that_answers(amqp_url: str, tmp_path: Path) -> None:
    async with (
        TcpProxy(broker_port(amqp_url)) as hop,
        started(url_of(amqp_url, [closed_port(), hop.port]), tmp_path) as bus,
    ):
        assert isinstance(bus._conn, FailoverConnection) and bus._conn.current == 1
        got: list[str] = []

        async def handler(message: Message) -> None:
            got.append(message.delivery_id)

        await bus.consume(UNIT, handler)
        await bus.publish(Delivery("d-1", "doc-1", UNIT, b"x"))
        async with asyncio.timeout(10):
            while got != ["d-1"]:
                await asyncio.sleep(0.05)
        counters = await bus.counters([UNIT])  # an operator's read takes the same way
        assert counters[UNIT].depth == 0


async def test_no_host_answering_is_bus_unavailable_naming_each(tmp_path: Path) -> None:
    first, second = closed_port(), closed_port()
    bus = AmqpBus(
        f"amqp://guest:secret@127.0.0.1:{first},127.0.0.1:{second}/",
        claims=ClaimStore(tmp_path / "claims"),
        policy=POLICY,
        connect_timeout=2,
    )
    with pytest.raises(GatewayError) as caught:
        await bus.start()
    assert caught.value.code == "bus_unavailable"
    message = caught.value.message
    assert f"127.0.0.1:{first}" in message and f"127.0.0.1:{second}" in message
    assert "secret" not in message


async def test_when_its_host_dies_the_bus_goes_on_through_the_other(
    amqp_url: str, tmp_path: Path
) -> None:
    async with (
        TcpProxy(broker_port(amqp_url)) as first,
        TcpProxy(broker_port(amqp_url)) as second,
        started(url_of(amqp_url, [first.port, second.port]), tmp_path) as bus,
    ):
        assert isinstance(bus._conn, FailoverConnection) and bus._conn.current == 0
        got: set[str] = set()

        async def handler(message: Message) -> None:
            got.add(message.delivery_id)

        await bus.consume(UNIT, handler)
        confirmed: list[tuple[str, float]] = []
        died_at = 0.0
        for i in range(60):
            if i == 20:
                first.stop()
                died_at = time.monotonic()
            await bus.publish(Delivery(f"d-{i}", f"doc-{i}", UNIT, b"x"))
            confirmed.append((f"d-{i}", time.monotonic()))
            await asyncio.sleep(0.02)
        async with asyncio.timeout(30):
            while not {d for d, _ in confirmed} <= got:
                await asyncio.sleep(0.05)
        assert bus._conn.current == 1
        assert not first.links and second.links  # everything goes the other way now
        back = min(t for d, t in confirmed[20:]) - died_at
        print(f"\npublishing went on through the other host {back:.2f} s after the first died")
        assert back < 10
