"""One contract for every bus: AmqpBus on the real RabbitMQ and LocalBus on SQLite must behave
the same for routing, fan-out, acknowledgement, retries, expiry, dead letters, redrive, the
claim check and per-unit order. Short schedules (0.2 s steps) keep it fast.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gateway.bus import (
    AmqpBus,
    ClaimStore,
    Delivery,
    LocalBus,
    Message,
    Outcome,
    RetryableDeliveryError,
    RetryPolicy,
    Transition,
)
from gateway.bus import naming as n
from gateway.errors import GatewayError

FAST = RetryPolicy.of_seconds([0.2, 0.4], ttl=30, max_attempts=10)

AnyBus = AmqpBus | LocalBus
MakeBus = Callable[..., Awaitable[AnyBus]]


class Recorder:
    """Observer that keeps every transition."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    async def __call__(self, t: Transition) -> None:
        self.transitions.append(t)

    def outcomes(self, delivery_id: str) -> list[Outcome]:
        return [t.outcome for t in self.transitions if t.delivery_id == delivery_id]


@pytest.fixture(params=["local", pytest.param("amqp", marks=pytest.mark.amqp)])
async def make_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeBus]:
    kind = request.param
    url = request.getfixturevalue("amqp_url") if kind == "amqp" else None
    namespace = f"test{uuid.uuid4().hex[:10]}"
    made: list[AnyBus] = []

    async def make(**options: Any) -> AnyBus:
        options.setdefault("policy", FAST)
        options["claims"] = ClaimStore(tmp_path / "claims")
        bus: AnyBus
        if url is not None:
            bus = AmqpBus(url, namespace=namespace, publish_timeout=20, **options)
        else:
            bus = LocalBus(tmp_path / "bus.db", poll_interval=0.05, lease=5, **options)
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close(grace=0)
    for bus in made:
        if isinstance(bus, AmqpBus):
            await bus.destroy([])  # its declared units, delay and dead-letter queues


def delivery(unit: str, i: int = 0, body: bytes | None = None, **kw: Any) -> Delivery:
    return Delivery(
        delivery_id=f"d-{unit}-{i}",
        document_key=f"doc-{i}",
        recipient=unit,
        body=body if body is not None else f"body {unit} {i}".encode(),
        **kw,
    )


class Inbox:
    """A handler that records what it received and can fail on demand."""

    def __init__(self, fail: Callable[[Message], Exception | None] | None = None) -> None:
        self.messages: list[Message] = []
        self.fail = fail
        self.changed = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.changed.set()
        error = self.fail(message) if self.fail else None
        if error is not None:
            raise error

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_routes_each_delivery_to_its_own_unit_only(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.declare(["A", "B", "C"])
    await bus.publish(delivery("A", 1))
    await bus.publish(delivery("B", 2))
    inboxes = {u: Inbox() for u in "ABC"}
    for u, inbox in inboxes.items():
        await bus.consume(u, inbox)
    await inboxes["A"].wait_for(1)
    await inboxes["B"].wait_for(1)
    await asyncio.sleep(0.3)
    assert [m.delivery_id for m in inboxes["A"].messages] == ["d-A-1"]
    assert [m.delivery_id for m in inboxes["B"].messages] == ["d-B-2"]
    assert inboxes["C"].messages == []


async def test_message_carries_ids_attempt_priority_and_caller_headers(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.declare(["A"])
    before = time.time()
    await bus.publish(delivery("A", 7, priority=2, headers={"kind": "document"}))
    inbox = Inbox()
    await bus.consume("A", inbox)
    (m,) = await inbox.wait_for(1)
    assert (m.delivery_id, m.document_key, m.recipient) == ("d-A-7", "doc-7", "A")
    assert (m.attempt, m.priority, m.redelivered, m.redrives) == (1, 2, False, 0)
    assert m.body == b"body A 7"
    assert dict(m.headers) == {"kind": "document"}
    assert before - 0.01 <= m.queued_at <= time.time()
    assert m.expires_at == pytest.approx(m.queued_at + 30, abs=0.01)


async def test_fans_out_one_copy_to_each_of_many_recipients(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    units = [f"000.{i:02d}.05.H07" for i in range(40)]
    await bus.declare(units)
    await bus.publish_many(delivery(u, 1) for u in units)
    assert sorted(t.recipient for t in recorder.transitions) == sorted(units)
    assert {t.outcome for t in recorder.transitions} == {Outcome.QUEUED}
    counters = await bus.counters(units)
    assert {u: c.depth for u, c in counters.items()} == dict.fromkeys(units, 1)
    inboxes = {u: Inbox() for u in units}
    for u in units:
        await bus.consume(u, inboxes[u])
    for u in units:
        (m,) = await inboxes[u].wait_for(1)
        assert m.recipient == u


async def test_publishing_to_an_undeclared_unit_is_unknown_recipient(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.declare(["A"])
    with pytest.raises(GatewayError) as e:
        await bus.publish(delivery("NOPE"))
    assert e.value.code == "unknown_recipient"
    with pytest.raises(GatewayError) as e:
        await bus.consume("NOPE", Inbox())
    assert e.value.code == "unknown_recipient"


async def test_a_batch_with_an_undeclared_unit_still_publishes_the_others(
    make_bus: MakeBus,
) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    await bus.declare(["A", "B"])
    with pytest.raises(GatewayError) as e:
        await bus.publish_many([delivery("A"), delivery("NOPE"), delivery("B")])
    assert e.value.code == "unknown_recipient" and "NOPE" in e.value.message
    assert sorted(t.delivery_id for t in recorder.transitions) == ["d-A-0", "d-B-0"]
    counters = await bus.counters(["A", "B"])
    assert (counters["A"].depth, counters["B"].depth) == (1, 1)


async def test_declare_is_idempotent_and_keeps_messages(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.declare(["A", "B"])
    await bus.publish(delivery("A"))
    await bus.declare(["A", "B", "C"])
    counters = await bus.counters(["A", "B", "C", "UNDECLARED"])
    assert [counters[u].depth for u in "ABC"] == [1, 0, 0]
    assert "UNDECLARED" not in counters


async def test_acknowledges_only_after_the_handler_returned(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    await bus.declare(["A"])
    await bus.publish(delivery("A"))
    started = asyncio.Event()

    async def stuck(message: Message) -> None:
        started.set()
        await asyncio.Event().wait()

    sub = await bus.consume("A", stuck)
    await asyncio.wait_for(started.wait(), 10)
    counters = (await bus.counters(["A"]))["A"]
    assert (counters.depth, counters.in_flight) == (0, 1)
    await sub.stop(grace=0)  # cancelled inside the handler: never acknowledged
    inbox = Inbox()
    await bus.consume("A", inbox)
    (m,) = await inbox.wait_for(1)
    assert (m.delivery_id, m.attempt, m.redelivered) == ("d-A-0", 1, True)
    await eventually(lambda: _settled(recorder, "d-A-0"))
    assert recorder.outcomes("d-A-0") == [Outcome.QUEUED, Outcome.DELIVERED]


async def _settled(recorder: Recorder, delivery_id: str) -> bool:
    return Outcome.DELIVERED in recorder.outcomes(delivery_id)


async def test_retries_a_failed_delivery_on_the_schedule(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    await bus.declare(["A"])
    seen: list[float] = []

    def fail_twice(m: Message) -> Exception | None:
        seen.append(time.monotonic())
        return RetryableDeliveryError("endpoint down") if m.attempt < 3 else None

    inbox = Inbox(fail_twice)
    await bus.consume("A", inbox)
    await bus.publish(delivery("A"))
    await inbox.wait_for(2)
    counters = (await bus.counters(["A"]))["A"]
    assert counters.retrying + counters.depth + (counters.in_flight or 0) >= 1
    messages = await inbox.wait_for(3)
    assert [m.attempt for m in messages] == [1, 2, 3]
    assert {m.delivery_id for m in messages} == {"d-A-0"}
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38, gaps
    await eventually(lambda: _settled(recorder, "d-A-0"))
    assert recorder.outcomes("d-A-0") == [
        Outcome.QUEUED,
        Outcome.RETRYING,
        Outcome.RETRYING,
        Outcome.DELIVERED,
    ]
    retrying = [t for t in recorder.transitions if t.outcome is Outcome.RETRYING]
    assert [t.attempt for t in retrying] == [1, 2]
    assert all(
        t.retry_at is not None and t.reason and "endpoint down" in t.reason for t in retrying
    )


async def test_permanent_failure_is_dead_lettered_at_once(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    await bus.declare(["A"])
    inbox = Inbox(lambda m: ValueError("no such inbox"))
    await bus.consume("A", inbox)
    await bus.publish(delivery("A"))
    await inbox.wait_for(1)
    await eventually(lambda: _has(recorder, Outcome.DEAD_LETTERED))
    await asyncio.sleep(0.5)
    assert len(inbox.messages) == 1
    (dead,) = await bus.dead_letters("A")
    assert (dead.delivery_id, dead.expired, dead.attempt) == ("d-A-0", False, 1)
    assert "ValueError: no such inbox" in dead.reason
    counters = (await bus.counters(["A"]))["A"]
    assert (counters.depth, counters.retrying, counters.dead) == (0, 0, 1)


async def _has(recorder: Recorder, outcome: Outcome) -> bool:
    return any(t.outcome is outcome for t in recorder.transitions)


async def test_too_many_attempts_end_in_the_dead_letters(make_bus: MakeBus) -> None:
    recorder = Recorder()
    policy = RetryPolicy.of_seconds([0.2], ttl=30, max_attempts=3)
    bus = await make_bus(observer=recorder, policy=policy)
    await bus.declare(["A"])
    inbox = Inbox(lambda m: RetryableDeliveryError("still down"))
    await bus.consume("A", inbox)
    await bus.publish(delivery("A"))
    await eventually(lambda: _has(recorder, Outcome.DEAD_LETTERED))
    assert [m.attempt for m in inbox.messages] == [1, 2, 3]
    (dead,) = await bus.dead_letters("A")
    assert dead.attempt == 3 and "3 attempts" in dead.reason


async def test_a_delivery_expires_after_its_time_to_live(make_bus: MakeBus) -> None:
    recorder = Recorder()
    policy = RetryPolicy.of_seconds([0.2], ttl=1.5)
    bus = await make_bus(observer=recorder, policy=policy)
    await bus.declare(["A"])
    inbox = Inbox(lambda m: RetryableDeliveryError("still down"))
    await bus.consume("A", inbox)
    await bus.publish(delivery("A"))
    await eventually(lambda: _has(recorder, Outcome.EXPIRED))
    assert 2 <= len(inbox.messages) <= 9
    outcomes = recorder.outcomes("d-A-0")
    assert outcomes[0] is Outcome.QUEUED and outcomes[-1] is Outcome.EXPIRED
    assert Outcome.DEAD_LETTERED not in outcomes
    (dead,) = await bus.dead_letters("A")
    assert dead.expired and "time-to-live" in dead.reason
    assert (await bus.counters(["A"]))["A"].dead == 1


async def test_an_expired_delivery_is_not_handed_to_the_handler(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder, policy=RetryPolicy.of_seconds([0.2], ttl=0.3))
    await bus.declare(["A"])
    await bus.publish(delivery("A"))
    await asyncio.sleep(0.5)
    inbox = Inbox()
    await bus.consume("A", inbox)
    await eventually(lambda: _has(recorder, Outcome.EXPIRED))
    assert inbox.messages == []


async def test_urgent_letters_expire_sooner(make_bus: MakeBus) -> None:
    policy = RetryPolicy.of_seconds([0.2], ttl=30, urgent_delays=[0.2], urgent_ttl=0.3)
    recorder = Recorder()
    bus = await make_bus(observer=recorder, policy=policy)
    await bus.declare(["A"])
    await bus.publish(delivery("A", 1, priority=0))
    await bus.publish(delivery("A", 2, priority=3))
    await asyncio.sleep(0.5)
    inbox = Inbox()
    await bus.consume("A", inbox)
    (m,) = await inbox.wait_for(1)
    assert m.delivery_id == "d-A-1"
    await eventually(lambda: _has(recorder, Outcome.EXPIRED))
    assert recorder.outcomes("d-A-2")[-1] is Outcome.EXPIRED


async def test_redrive_puts_chosen_dead_letters_back_on_their_unit(make_bus: MakeBus) -> None:
    recorder = Recorder()
    bus = await make_bus(observer=recorder)
    await bus.declare(["A", "B"])
    broken = {"on": True}
    inboxes = {u: Inbox(lambda m: ValueError("broken") if broken["on"] else None) for u in "AB"}
    subs = [await bus.consume(u, inboxes[u]) for u in "AB"]
    await bus.publish_many([delivery("A", i) for i in range(3)] + [delivery("B", 9)])
    await eventually(lambda: _count(recorder, Outcome.DEAD_LETTERED, 4), timeout=15)
    assert sorted(d.delivery_id for d in await bus.dead_letters("A")) == [
        "d-A-0",
        "d-A-1",
        "d-A-2",
    ]
    broken["on"] = False
    assert await bus.redrive("A", ["d-A-1", "unknown-id"]) == 1
    await inboxes["A"].wait_for(4)
    again = inboxes["A"].messages[3]
    assert (again.delivery_id, again.attempt, again.redrives) == ("d-A-1", 1, 1)
    assert await bus.redrive("A") == 2
    await inboxes["A"].wait_for(6)
    assert await bus.redrive("A") == 0
    assert [d.delivery_id for d in await bus.dead_letters("B")] == ["d-B-9"]
    redriven = [t.delivery_id for t in recorder.transitions if t.outcome is Outcome.REDRIVEN]
    assert redriven[0] == "d-A-1" and sorted(redriven) == ["d-A-0", "d-A-1", "d-A-2"]
    await eventually(lambda: _count(recorder, Outcome.DELIVERED, 3))
    counters = await bus.counters(["A", "B"])
    assert (counters["A"].dead, counters["B"].dead) == (0, 1)
    for sub in subs:
        await sub.stop()


async def _count(recorder: Recorder, outcome: Outcome, count: int) -> bool:
    return sum(t.outcome is outcome for t in recorder.transitions) >= count


async def raw_unit_message(bus: AnyBus, unit: str) -> tuple[bytes, dict[str, Any]]:
    """The message as the bus stores it, before any consumer fetched the claim."""
    if isinstance(bus, LocalBus):
        with sqlite3.connect(bus.path) as db:
            body, headers = db.execute(
                "SELECT body, envelope FROM bus_messages WHERE unit = ?", (unit,)
            ).fetchone()
        return body, json.loads(headers)
    conn = await aio_pika.connect(bus.url)
    try:
        ch = await conn.channel()
        queue = await ch.get_queue(bus.topology.unit_queue(unit), ensure=False)
        m = await queue.get(timeout=5)
        assert m is not None
        await m.nack(requeue=True)
        return m.body, dict(m.headers)
    finally:
        await conn.close()


async def test_large_bodies_travel_by_claim_check_stored_once(make_bus: MakeBus) -> None:
    bus = await make_bus(claim_check_bytes=1024)
    await bus.declare(["A", "B"])
    large = bytes(range(256)) * 40  # 10 KiB
    await bus.publish_many([delivery("A", 1, body=large), delivery("B", 1, body=large)])
    await bus.publish(delivery("A", 2, body=b"small"))
    body, headers = await raw_unit_message(bus, "B")
    assert body == b"" and str(headers[n.H_CLAIM]).startswith("sha256:")
    assert len([p for p in bus.claims.root.rglob("*") if p.is_file()]) == 1
    inboxes = {u: Inbox() for u in "AB"}
    for u in "AB":
        await bus.consume(u, inboxes[u])
    received = {m.delivery_id: m.body for m in await inboxes["A"].wait_for(2)}
    (b1,) = await inboxes["B"].wait_for(1)
    assert received == {"d-A-1": large, "d-A-2": b"small"} and b1.body == large


async def test_keeps_the_order_of_arrival_per_unit(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.declare(["A", "B"])
    for i in range(30):
        await bus.publish(delivery("A", i))
        await bus.publish(delivery("B", i))
    inbox = Inbox()
    await bus.consume("A", inbox, prefetch=1)
    messages = await inbox.wait_for(30)
    assert [m.delivery_id for m in messages] == [f"d-A-{i}" for i in range(30)]


async def test_a_failing_observer_leaves_the_delivery_unacknowledged(make_bus: MakeBus) -> None:
    calls: list[Outcome] = []

    async def flaky(t: Transition) -> None:
        calls.append(t.outcome)
        if t.outcome is Outcome.DELIVERED and calls.count(Outcome.DELIVERED) == 1:
            raise RuntimeError("ledger down")

    bus = await make_bus(observer=flaky)
    await bus.declare(["A"])
    await bus.publish(delivery("A"))
    inbox = Inbox()
    await bus.consume("A", inbox)
    messages = await inbox.wait_for(2, timeout=15)
    assert [m.delivery_id for m in messages] == ["d-A-0", "d-A-0"]
    assert messages[1].redelivered
    await eventually(lambda: _true(calls.count(Outcome.DELIVERED) == 2))


async def _true(value: bool) -> bool:
    return value
