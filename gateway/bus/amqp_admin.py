"""Operator work on RabbitMQ for ``AmqpBus``, over a plain connection: declaring the topology,
queue depths, and reading the shared delay and dead-letter queues per unit.

AMQP 0-9-1 has no way to peek at a queue, so the shared queues are *browsed*: consumed without
acknowledgement, then the channel is closed and every message not acknowledged goes back to
the queue where it was. Those queues are single-active-consumer, so two browsers take turns.
Only ready messages are counted: with RabbitMQ 3.10 a passive declare of a quorum queue reports
no messages at all, so counts come from an (idempotent) full declare with the same arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from gateway.bus import codec
from gateway.bus import naming as n
from gateway.bus.model import DeadLetter
from gateway.errors import GatewayError

CHANNELS = 16  # declares in parallel: one RPC at a time per channel
BUSY_TIMEOUT = 10.0  # seconds to wait for another reader of a shared queue
IDLE = 0.5  # seconds without a message after which a browse stops early
RETURN_TIMEOUT = 5.0  # seconds to wait until browsed messages are ready again

Renew = Callable[[codec.Waybill], codec.Waybill]
MakeMessage = Callable[[codec.Waybill, bytes], aio_pika.Message]


class Browse:
    """Messages held by a browse; ``acked`` counts those acknowledged (taken for good)."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self.messages: list[AbstractIncomingMessage] = []
        self.acked = 0

    async def ack(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self.acked += 1


class Admin:
    def __init__(self, conn: AbstractConnection, topology: n.Topology) -> None:
        self.conn = conn
        self.topology = topology

    async def declare_shared(self, delays_ms: Sequence[int]) -> None:
        t = self.topology
        ch = await self.conn.channel()
        try:
            deliver = await ch.declare_exchange(
                t.deliver_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            )
            delay = await ch.declare_exchange(
                t.delay_exchange, aio_pika.ExchangeType.HEADERS, durable=True
            )
            del deliver
            for d in delays_ms:
                q = await ch.declare_queue(
                    t.delay_queue(d), durable=True, arguments=n.delay_queue_arguments(t, d)
                )
                await q.bind(delay, arguments=n.delay_binding_arguments(d))
            await ch.declare_queue(t.dead_queue, durable=True, arguments=n.DEAD_QUEUE_ARGUMENTS)
        except aiormq.exceptions.ChannelPreconditionFailed as e:
            raise GatewayError(
                "config_invalid",
                f"the broker holds bus queues or exchanges with other arguments: {e}",
            ) from e
        finally:
            await ch.close()

    async def _on_channels(self, items: Sequence[str], work: Callable[..., Any]) -> None:
        """Run ``work(channel, item)`` over the items on a few channels at once."""
        pending = iter(items)

        async def worker() -> None:
            ch = await self.conn.channel()
            try:
                for item in pending:
                    ch = await work(ch, item)
            finally:
                await ch.close()

        await asyncio.gather(*(worker() for _ in range(min(CHANNELS, len(items)))))

    async def declare_units(self, codes: Sequence[str]) -> None:
        t = self.topology

        async def declare(ch: AbstractChannel, code: str) -> AbstractChannel:
            q = await ch.declare_queue(
                t.unit_queue(code), durable=True, arguments=n.UNIT_QUEUE_ARGUMENTS
            )
            await q.bind(t.deliver_exchange, routing_key=code)
            return ch

        try:
            await self._on_channels(codes, declare)
        except aiormq.exceptions.ChannelPreconditionFailed as e:
            raise GatewayError(
                "config_invalid", f"a unit queue exists with other arguments: {e}"
            ) from e

    async def queue_exists(self, name: str) -> bool:
        ch = await self.conn.channel()
        try:
            await ch.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        with contextlib.suppress(Exception):
            await ch.close()
        return True

    async def depths(self, units: Sequence[str]) -> dict[str, int]:
        """Ready messages per unit; units without a queue are left out."""
        t = self.topology
        found: dict[str, int] = {}

        async def depth(ch: AbstractChannel, code: str) -> AbstractChannel:
            name = t.unit_queue(code)
            try:
                await ch.declare_queue(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return await self.conn.channel()  # the broker closed that one
            q = await ch.declare_queue(name, durable=True, arguments=n.UNIT_QUEUE_ARGUMENTS)
            found[code] = q.declaration_result.message_count or 0
            return ch

        await self._on_channels(units, depth)
        return found

    async def _ready_count(self, name: str, arguments: dict[str, Any]) -> int:
        ch = await self.conn.channel()
        try:
            q = await ch.declare_queue(name, durable=True, arguments=arguments)
            return q.declaration_result.message_count or 0
        finally:
            await ch.close()

    @contextlib.asynccontextmanager
    async def browse(self, name: str, arguments: dict[str, Any]) -> AsyncIterator[Browse]:
        """The ready messages of a queue, held unacknowledged until the block ends."""
        ch = await self.conn.channel(publisher_confirms=True, on_return_raises=True)
        browse = Browse(ch)
        try:
            q = await ch.declare_queue(name, durable=True, arguments=arguments)
            expected = q.declaration_result.message_count or 0
            if expected:
                await ch.set_qos(prefetch_count=0)
                inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
                await q.consume(inbox.put)
                timeout = BUSY_TIMEOUT
                while len(browse.messages) < expected:
                    try:
                        browse.messages.append(await asyncio.wait_for(inbox.get(), timeout))
                    except TimeoutError:
                        if not browse.messages:
                            raise GatewayError(
                                "bus_unavailable", f"{name} is being read by another command"
                            ) from None
                        break
                    timeout = IDLE
            yield browse
        finally:
            with contextlib.suppress(Exception):
                await ch.close()  # everything not acknowledged goes back
        # The broker puts them back asynchronously; the next reader must find them.
        back = len(browse.messages) - browse.acked
        deadline = asyncio.get_running_loop().time() + RETURN_TIMEOUT
        while back and await self._ready_count(name, arguments) < back:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)

    async def count_by_recipient(
        self, queues: Sequence[tuple[str, dict[str, Any]]]
    ) -> Counter[str]:
        counts: Counter[str] = Counter()
        for name, arguments in queues:
            async with self.browse(name, arguments) as browse:
                for m in browse.messages:
                    recipient = (m.headers or {}).get(n.H_RECIPIENT)
                    if recipient is not None:
                        counts[codec._text(recipient)] += 1
        return counts

    async def dead_letters(self, unit: str) -> list[DeadLetter]:
        out = []
        async with self.browse(self.topology.dead_queue, n.DEAD_QUEUE_ARGUMENTS) as browse:
            for m in browse.messages:
                headers = m.headers or {}
                try:
                    env = codec.parse_headers(headers)
                except ValueError:
                    continue
                if env.recipient != unit:
                    continue
                out.append(
                    DeadLetter(
                        delivery_id=env.delivery_id,
                        document_key=env.document_key,
                        recipient=env.recipient,
                        attempt=env.attempt,
                        priority=env.priority,
                        reason=codec._text(headers.get(n.H_REASON, "")),
                        dead_at=int(codec._text(headers.get(n.H_DEAD_AT, 0))) / 1000,
                        expired=codec._text(headers.get(n.H_EXPIRED, "0")) == "1",
                    )
                )
        return out

    async def redrive(
        self, unit: str, ids: set[str] | None, renew: Renew, make_message: MakeMessage
    ) -> list[codec.Waybill]:
        """Republish the chosen dead letters (confirmed), then acknowledge them."""
        t = self.topology
        async with self.browse(t.dead_queue, n.DEAD_QUEUE_ARGUMENTS) as browse:
            chosen: list[tuple[AbstractIncomingMessage, codec.Waybill]] = []
            for m in browse.messages:
                try:
                    env = codec.parse_headers(m.headers or {})
                except ValueError:
                    continue
                if env.recipient == unit and (ids is None or env.delivery_id in ids):
                    chosen.append((m, renew(env)))
            deliver = await browse.channel.get_exchange(t.deliver_exchange, ensure=False)
            for i in range(0, len(chosen), 256):
                window = chosen[i : i + 256]
                try:
                    await asyncio.gather(
                        *(
                            deliver.publish(make_message(env, m.body), env.recipient)
                            for m, env in window
                        )
                    )
                except aiormq.exceptions.PublishError as e:
                    raise GatewayError("unknown_recipient", f"no bus queue for unit {unit}") from e
                for m, _ in window:
                    await browse.ack(m)
        return [env for _, env in chosen]

    async def delete(self, units: Sequence[str], delays_ms: Sequence[int]) -> None:
        """Delete the namespace's queues and exchanges (tests, retiring a namespace)."""
        t = self.topology
        names = [t.unit_queue(u) for u in units]
        names += [t.delay_queue(d) for d in delays_ms] + [t.dead_queue]

        async def delete_queue(ch: AbstractChannel, name: str) -> AbstractChannel:
            try:
                await ch.queue_delete(name)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return await self.conn.channel()  # already gone; the broker closed that one
            return ch

        await self._on_channels(names, delete_queue)
        ch = await self.conn.channel()
        try:
            for exchange in (t.deliver_exchange, t.delay_exchange):
                await ch.exchange_delete(exchange)
        finally:
            await ch.close()
