"""AmqpBus against a bare aio-pika loop on the same 809 unit queues, with 4 KiB bodies:
confirmed publishes per second (same in-flight window) and consumed+acknowledged per second
(same prefetch, one channel per unit queue in both, attached all at once; the rate runs
from attaching to the last acknowledgement).

    .venv/bin/python bench/bench_bus.py [--messages 30000] [--window 256] [--prefetch 64]
                                        [--rounds 4] [--url amqp://guest:guest@127.0.0.1/]

Goal (issue 4): AmqpBus >= 80 % of bare aio-pika for both, and >= 3,000 confirmed
publishes/s. The queues live in a throw-away namespace that is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from gateway.bus import AmqpBus, ClaimStore, Delivery, Message, RetryPolicy
from gateway.directory import load_directory
from gateway.errors import GatewayError

BODY = os.urandom(4096)


Measure = tuple[float, float]  # messages per second, client CPU seconds per message


async def measured(count: int, work: Awaitable[object]) -> Measure:
    """Rate and client CPU of ``work`` alone (no connection set-up or tear-down)."""
    wall, cpu = time.perf_counter(), time.process_time()
    await work
    return count / (time.perf_counter() - wall), (time.process_time() - cpu) / count


async def bus_publish(bus: AmqpBus, units: list[str], count: int, tag: str) -> Measure:
    deliveries = [
        Delivery(f"{tag}-{i}", f"doc-{i}", units[i % len(units)], BODY) for i in range(count)
    ]
    return await measured(count, bus.publish_many(deliveries))


async def bare_publish(
    url: str, bus: AmqpBus, units: list[str], count: int, window: int, tag: str
) -> Measure:
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(bus.topology.deliver_exchange, ensure=False)
        pending = iter(range(count))

        async def sender() -> None:
            for i in pending:
                unit = units[i % len(units)]
                await exchange.publish(
                    aio_pika.Message(
                        BODY,
                        headers={
                            "delivery-id": f"{tag}-{i}",
                            "document-key": f"doc-{i}",
                            "recipient": unit,
                            "attempt": 1,
                            "priority": 0,
                        },
                        message_id=f"{tag}-{i}",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=unit,
                    mandatory=True,
                )

        return await measured(count, asyncio.gather(*(sender() for _ in range(window))))
    finally:
        await conn.close()


class Tally:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    def one(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def consume_rate(tally: Tally, attach: Callable[[], Awaitable[None]]) -> Measure:
    """From attaching the consumers (all at once) to the last acknowledgement."""

    async def work() -> None:
        await attach()
        await asyncio.wait_for(tally.done.wait(), 600)

    return await measured(tally.target, work())


async def bus_consume(bus: AmqpBus, units: list[str], count: int, prefetch: int) -> Measure:
    tally = Tally(count)
    subs = []

    async def handler(message: Message) -> None:
        tally.one()

    async def attach() -> None:
        subs.extend(
            await asyncio.gather(*(bus.consume(unit, handler, prefetch=prefetch) for unit in units))
        )

    result = await consume_rate(tally, attach)
    await asyncio.gather(*(sub.stop() for sub in subs))
    return result


async def bare_consume(
    url: str, bus: AmqpBus, units: list[str], count: int, prefetch: int
) -> Measure:
    tally = Tally(count)
    conn = await aio_pika.connect_robust(url)

    async def on_message(message: AbstractIncomingMessage) -> None:
        tally.one()
        await message.ack()

    async def attach_one(unit: str) -> None:
        channel = await conn.channel(publisher_confirms=False)
        queue = await channel.declare_queue(bus.topology.unit_queue(unit), passive=True)
        await channel.set_qos(prefetch_count=prefetch)
        await queue.consume(on_message)

    async def attach() -> None:
        await asyncio.gather(*(attach_one(unit) for unit in units))

    try:
        return await consume_rate(tally, attach)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=256, help="unconfirmed publishes in flight")
    parser.add_argument("--prefetch", type=int, default=64, help="per unit queue")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between phases")
    parser.add_argument(
        "--url",
        default=os.environ.get("GATEWAY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args()

    units = [u.code for u in load_directory(None)]
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        bus = AmqpBus(
            args.url,
            namespace=namespace,
            claims=ClaimStore(Path(tmp)),
            policy=RetryPolicy.of_seconds([30], ttl=3600),
            publish_window=args.window,
        )
        await bus.start()
        try:
            t = time.perf_counter()
            await bus.declare(units)
            declared = time.perf_counter() - t
            t = time.perf_counter()
            await bus.declare(units)
            redeclared = time.perf_counter() - t
            print(
                f"python {platform.python_version()}, {os.cpu_count()} cores, aio-pika "
                f"{aio_pika.__version__}; {len(units)} unit queues (quorum), "
                f"{args.messages} messages of {len(BODY)} bytes, window {args.window}, "
                f"prefetch {args.prefetch}"
            )
            print(
                f"declare {len(units)} units: {declared:.1f} s first, "
                f"{redeclared:.1f} s again (idempotent)"
            )
            results: dict[str, list[float]] = {
                k: [] for k in ("bare pub", "bus pub", "bare con", "bus con")
            }
            # Client CPU per message: unlike rates, it does not depend on what else runs.
            cpu: dict[str, list[float]] = {k: [] for k in results}
            for r in range(args.rounds):
                # Alternate who goes first, and let the broker settle (quorum queues write
                # their logs and snapshots after a burst) before every measurement.
                for who in ("bare", "bus") if r % 2 == 0 else ("bus", "bare"):
                    tag = f"r{r}{who}"
                    await asyncio.sleep(args.settle)
                    if who == "bare":
                        rate, used = await bare_publish(
                            args.url, bus, units, args.messages, args.window, tag
                        )
                    else:
                        rate, used = await bus_publish(bus, units, args.messages, tag)
                    results[f"{who} pub"].append(rate)
                    cpu[f"{who} pub"].append(used)
                    await asyncio.sleep(args.settle)
                    if who == "bare":
                        rate, used = await bare_consume(
                            args.url, bus, units, args.messages, args.prefetch
                        )
                    else:
                        rate, used = await bus_consume(bus, units, args.messages, args.prefetch)
                    results[f"{who} con"].append(rate)
                    cpu[f"{who} con"].append(used)
                print(
                    f"round {r + 1}: "
                    + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items())
                )
            best = {k: max(v) for k, v in results.items()}
            for what in ("pub", "con"):
                label = {"pub": "confirmed publishes", "con": "consumed+acked"}[what]
                bare, ours = best[f"bare {what}"], best[f"bus {what}"]
                print(
                    f"{label}: AmqpBus {ours:,.0f}/s, bare aio-pika {bare:,.0f}/s "
                    f"-> {100 * ours / bare:.0f} % (best of {args.rounds}); medians "
                    f"{statistics.median(results[f'bus {what}']):,.0f}/s and "
                    f"{statistics.median(results[f'bare {what}']):,.0f}/s"
                )
                us = {k: 1e6 * statistics.median(v) for k, v in cpu.items()}
                print(
                    f"  client CPU per message: AmqpBus {us[f'bus {what}']:.0f} us, "
                    f"bare {us[f'bare {what}']:.0f} us (median)"
                )
        finally:
            await bus.close()
            for _ in range(30):  # the broker may be restarting (a fault test elsewhere)
                try:
                    await bus.destroy(units)
                    break
                except GatewayError:
                    await asyncio.sleep(2)
            else:
                print(f"could not delete namespace {namespace}; delete its queues by hand")


if __name__ == "__main__":
    asyncio.run(main())
