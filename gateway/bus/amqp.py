"""``AmqpBus``: the bus on RabbitMQ with aio-pika.

One durable quorum queue per unit (``gw.unit.<OrganId>``) bound to one direct exchange; retry
copies wait in shared delay queues (one per delay of the schedules: message TTL, then
at-least-once dead-lettering back into the direct exchange under the unit code); dead letters of
every unit share one queue, told apart by the ``gw-recipient`` header. Publishing uses publisher
confirms on a robust connection and retries through a broker restart; the URL may name the nodes
of a cluster, and the connection then goes to the next node whenever one fails. Consumers
acknowledge only after the handler and the observer returned. Operator reads and redrives go
through ``amqp_admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from gateway.bus import amqp_admin, codec, flow
from gateway.bus import naming as n
from gateway.bus.address import BrokerHost, broker_hosts, describe
from gateway.bus.claims import ClaimStore
from gateway.bus.model import (
    DeadLetter,
    Delivery,
    Handler,
    NoticeObserver,
    Observer,
    Outcome,
    UnitCounters,
)
from gateway.bus.policy import RetryPolicy
from gateway.errors import ConfigError, GatewayError

log = logging.getLogger(__name__)

# At shutdown, how long the broker has to answer a consumer's cancel or a close.
BROKER_GOODBYE_SECONDS = 5.0

# Errors after which a publish is tried again once the robust connection is back.
_TRANSIENT = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
)

T = TypeVar("T")


class FailoverConnection(RobustConnection):
    """A robust connection over the nodes of a cluster: after an attempt that failed or a
    connection that was lost, the next attempt goes to the next host, in turn. (aio-pika's
    robust connection reconnects to its one URL; every attempt, failed or lost, ends in
    ``_on_connection_close``, and the next one connects to ``self.url``.)"""

    def __init__(self, hosts: tuple[BrokerHost, ...], first: int = 0, **kwargs: Any) -> None:
        super().__init__(URL(hosts[first].url), **kwargs)
        self.hosts = hosts
        self.current = first

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self.hosts) > 1 and not self._close_called:
            gone = self.hosts[self.current]
            self.current = (self.current + 1) % len(self.hosts)
            self.url = URL(self.hosts[self.current].url)
            log.info(
                "RabbitMQ at %s closed or refused the connection; trying %s next",
                gone.where,
                self.hosts[self.current].where,
            )
        await super()._on_connection_close(closing)


class AmqpBus:
    def __init__(
        self,
        url: str,
        *,
        claims: ClaimStore,
        policy: RetryPolicy,
        namespace: str = "gw",
        claim_check_bytes: int = 1024 * 1024,
        publish_window: int = 256,
        publish_timeout: float = 60.0,
        prefetch: int = 16,
        observer: Observer | None = None,
        on_notice: NoticeObserver | None = None,
        clock: Callable[[], float] = time.time,
        reconnect_interval: float = 1.0,
        connect_timeout: float = 5.0,
        operation_timeout: float = 30.0,
    ) -> None:
        """``connect_timeout``: seconds to connect (TCP and the AMQP handshake);
        ``operation_timeout``: seconds for an operator's read (counters, dead letters). Past
        either, ``bus_unavailable`` rather than a wait on a broker that does not answer.
        ``on_notice(unit, notice_id)``: told of a sender's notice that a consumer of this bus
        found on a unit's queue (see ``publish_notice``).

        ``url`` names one host or the nodes of a cluster (``address.broker_hosts``); a
        connection goes to the first that answers, starting from the last that did."""
        self.url = url
        try:
            self.hosts = broker_hosts(url)
        except ValueError as e:
            raise ConfigError(f"the AMQP URL: {e}") from e
        self.where = describe(self.hosts)  # no credentials
        self._answered = 0  # the host that answered last
        self.connect_timeout = connect_timeout
        self.operation_timeout = operation_timeout
        self.claims = claims
        self.policy = policy
        self.topology = n.Topology(namespace)
        self.claim_check_bytes = claim_check_bytes
        self.publish_window = publish_window
        self.publish_timeout = publish_timeout
        self.prefetch = prefetch
        self.observer = observer
        self.on_notice = on_notice
        self.clock = clock
        self.reconnect_interval = reconnect_interval
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._deliver: AbstractExchange | None = None
        self._delay: AbstractExchange | None = None
        self._default: AbstractExchange | None = None
        self._consumers: dict[int, _AmqpConsumer] = {}
        self._declared: set[str] = set()
        self._in_flight: dict[str, int] = {}
        self._renewed = 0.0  # when the publish channel was last renewed (loop time)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._conn is not None:
            return
        delays = self.policy.all_delays_ms()
        await self._declaring(lambda admin: admin.declare_shared(delays))
        name = f"gateway-bus-{uuid.uuid4().hex[:8]}"

        async def robust(first: int) -> FailoverConnection:
            conn = FailoverConnection(
                self.hosts,
                first,
                reconnect_interval=self.reconnect_interval,
                client_properties={"connection_name": name},
            )
            try:
                await conn.connect(timeout=self.connect_timeout)
            except BaseException:  # no reconnecting in the background after a failure
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(BROKER_GOODBYE_SECONDS):
                        await conn.close()
                raise
            return conn

        self._conn = await self._first_answering(robust)
        async with self._answering("connect to"):
            channel = self._conn.channel(publisher_confirms=True, on_return_raises=True)
            await channel.initialize(timeout=self.connect_timeout)
        self._channel = channel
        self._deliver = await channel.get_exchange(self.topology.deliver_exchange, ensure=False)
        self._delay = await channel.get_exchange(self.topology.delay_exchange, ensure=False)
        self._default = channel.default_exchange

    async def close(self, grace: float = 10.0) -> None:
        """Stop the consumers (together: each has its own channel), each letting its current
        message finish within ``grace``, then close the connection. With the broker out of
        reach nothing waits for it to come back: unacknowledged deliveries return to their
        queues when the broker sees the connection gone."""
        await asyncio.gather(*(c.stop(grace) for c in list(self._consumers.values())))
        if self._conn is not None:
            with contextlib.suppress(Exception):  # TimeoutError too
                async with asyncio.timeout(BROKER_GOODBYE_SECONDS):
                    await self._conn.close()
        self._conn = self._channel = None
        self._deliver = self._delay = self._default = None

    async def __aenter__(self) -> AmqpBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _answering(
        self, what: str, seconds: float | None = None, where: str | None = None
    ) -> AsyncIterator[None]:
        """Broker errors, and no answer within ``seconds`` (the connect timeout by default),
        become ``bus_unavailable`` naming the broker (or ``where``: one of its hosts)."""
        limit = self.connect_timeout if seconds is None else seconds
        where = where or self.where
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError as e:
            raise GatewayError(
                "bus_unavailable", f"{where} did not answer within {limit:g} s ({what})"
            ) from e
        except (aiormq.exceptions.AMQPConnectionError, OSError) as e:
            raise GatewayError("bus_unavailable", f"cannot {what} {where}: {e}") from e
        except aiormq.exceptions.AMQPError as e:
            if what.startswith("read"):
                raise  # the broker answered: not a reachability problem
            raise GatewayError("bus_unavailable", f"cannot {what} {where}: {e}") from e

    async def _first_answering(self, connect: Callable[[int], Awaitable[T]]) -> T:
        """``connect(i)`` to the hosts in turn, from the one that answered last, until one
        answers within the connect timeout; ``bus_unavailable`` naming each if none does."""
        failures: list[str] = []
        count = len(self.hosts)
        for i in ((self._answered + k) % count for k in range(count)):
            where = self.where if count == 1 else f"RabbitMQ at {self.hosts[i].where}"
            try:
                async with self._answering("connect to", where=where):
                    connected = await connect(i)
            except GatewayError as e:
                if count == 1:
                    raise
                failures.append(e.message)
                continue
            self._answered = i
            return connected
        raise GatewayError("bus_unavailable", f"no node of {self.where} answered: " +
                           "; ".join(failures))  # fmt: skip

    @contextlib.asynccontextmanager
    async def _admin(self, *, timed: bool = False) -> AsyncIterator[amqp_admin.Admin]:
        """A plain (not robust) connection for operator work: its failures stay its own.
        ``timed``: the work must be done within the operation timeout (reads; declaring
        800 queues on a fresh broker takes longer and has its own deadline)."""

        async def plain(i: int) -> AbstractConnection:
            return await aio_pika.connect(self.hosts[i].url, timeout=self.connect_timeout)

        conn = await self._first_answering(plain)
        try:
            if timed:
                async with self._answering("read from", self.operation_timeout):
                    yield amqp_admin.Admin(conn, self.topology)
            else:
                yield amqp_admin.Admin(conn, self.topology)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.connect_timeout):
                    await conn.close()

    def _connected(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise GatewayError("bus_unavailable", "the bus is not started")
        return self._conn

    # -- topology and publishing -------------------------------------------------------------

    async def declare(self, units: Iterable[str]) -> None:
        codes = sorted({n.check_unit_code(u) for u in units})
        await self._declaring(lambda admin: admin.declare_units(codes))
        self._declared.update(codes)

    async def _declaring(self, work: Callable[[amqp_admin.Admin], Awaitable[None]]) -> None:
        """Declare, again on a new connection while the broker is still starting: just after
        a start, RabbitMQ accepts connections before it can create quorum queues (it closes
        the connection with INTERNAL_ERROR). Declaring is idempotent, so repeating is safe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        while True:
            try:
                async with self._admin() as admin:
                    await work(admin)
                return
            except (aiormq.exceptions.AMQPConnectionError, ConnectionError) as e:
                if loop.time() >= deadline:
                    raise GatewayError(
                        "bus_unavailable", f"cannot declare the topology: {e!r}"
                    ) from e
                log.info("declaring interrupted (%r); trying again", e)
                await asyncio.sleep(1)

    def _amqp_message(self, env: codec.Waybill, body: bytes, **extra: Any) -> aio_pika.Message:
        headers = codec.envelope_headers(env)
        headers.update(extra)
        return aio_pika.Message(
            body,
            headers=headers,
            message_id=env.delivery_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def _prepare(self, d: Delivery, now: float) -> tuple[codec.Waybill, aio_pika.Message]:
        claim, body = None, d.body
        if len(body) > self.claim_check_bytes:
            claim, body = await self.claims.put(d.body), b""
        env = codec.new_envelope(
            d, now=now, expires_at=self.policy.expires_at(d.priority, now), claim=claim
        )
        return env, self._amqp_message(env, body)

    async def _send(
        self,
        exchange: AbstractExchange | None,
        message: aio_pika.Message,
        routing_key: str,
        timeout: float | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm; through a connection loss, wait for the
        robust connection and publish again (a duplicate is possible, a loss is not), for at
        most ``timeout`` seconds (the publish timeout by default)."""
        if exchange is None:
            raise GatewayError("bus_unavailable", "the bus is not started")
        limit = self.publish_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await exchange.publish(message, routing_key, mandatory=True)
                return
            except aiormq.exceptions.PublishError as e:
                raise GatewayError(
                    "unknown_recipient", f"no bus queue for unit {routing_key}"
                ) from e
            except TimeoutError as e:
                raise GatewayError(
                    "bus_unavailable", f"no publisher confirm within {limit:g} s"
                ) from e
            except (*_TRANSIENT, aiormq.exceptions.DeliveryError) as e:
                if loop.time() >= deadline:
                    raise GatewayError("bus_unavailable", f"publish failed: {e!r}") from e
                log.info("publish to %s interrupted (%r); trying again", routing_key, e)
                if isinstance(e, aiormq.exceptions.DeliveryError):
                    await self._renew_channel()
                await asyncio.sleep(min(0.2, self.reconnect_interval))

    async def _renew_channel(self) -> None:
        """After a refused publish (a nack: unit queues have no length limit, so the broker
        had no leader for the queue), publish on a new channel, at most once a second. A
        RabbitMQ node that a connection moved to when another node died was seen refusing one
        channel's publishes to a few queues for 8 to over 30 s after they had new leaders;
        a new channel finds them."""
        channel, now = self._channel, asyncio.get_running_loop().time()
        if channel is None or now - self._renewed < 1.0:
            return
        self._renewed = now
        log.warning("the broker refused a publish; publishing on a new channel")
        with contextlib.suppress(*_TRANSIENT, aiormq.exceptions.AMQPError, TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await channel.close()
                await channel.reopen()

    async def publish(self, delivery: Delivery) -> None:
        now = self.clock()
        env, message = await self._prepare(delivery, now)
        await self._send(self._deliver, message, env.recipient)
        if self.observer is not None:
            await self.observer(codec.transition(env, Outcome.QUEUED, now))

    async def publish_many(self, deliveries: Iterable[Delivery]) -> None:
        now = self.clock()
        prepared = [await self._prepare(d, now) for d in deliveries]
        pending = iter(prepared)
        exchange = self._deliver
        confirmed: list[codec.Waybill] = []
        unknown: set[str] = set()

        async def sender() -> None:
            for env, message in pending:
                try:
                    await self._send(exchange, message, env.recipient)
                except GatewayError as e:
                    if e.code != "unknown_recipient":
                        raise
                    unknown.add(env.recipient)
                else:
                    confirmed.append(env)

        workers = [
            asyncio.create_task(sender()) for _ in range(min(self.publish_window, len(prepared)))
        ]
        try:
            await asyncio.gather(*workers)
        except Exception:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self._report_queued(confirmed, now)  # those did go out
            raise
        await self._report_queued(confirmed, now)
        if unknown:
            raise GatewayError(
                "unknown_recipient", f"no bus queue for unit(s) {', '.join(sorted(unknown))}"
            )

    async def publish_notice(self, unit: str, notice_id: str, event: str, body: bytes) -> None:
        """Put a sender's transport notice (JSON ``body``) on its own queue, persistent, as a
        message of kind ``notice``; return once the broker confirmed it. Not reported to the
        observer: a notice is not a copy. ``unknown_recipient`` when the unit has no queue;
        ``bus_unavailable`` when the broker does not confirm within the connect timeout (the
        caller tries again later: its notice is still waiting)."""
        message = aio_pika.Message(
            body,
            headers=codec.notice_headers(notice_id, event),
            message_id=notice_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._send(
            self._deliver, message, n.check_unit_code(unit), timeout=self.connect_timeout
        )

    async def _report_queued(self, envelopes: list[codec.Waybill], now: float) -> None:
        if self.observer is not None:  # together: the observer commits them in one batch
            observer = self.observer
            await asyncio.gather(
                *(observer(codec.transition(env, Outcome.QUEUED, now)) for env in envelopes)
            )

    # -- consuming ---------------------------------------------------------------------------

    async def consume(
        self, unit: str, handler: Handler, *, prefetch: int | None = None
    ) -> _AmqpConsumer:
        conn = self._connected()
        queue_name = self.topology.unit_queue(unit)
        channel = conn.channel(publisher_confirms=False)
        await channel.initialize()
        try:
            queue = await channel.declare_queue(queue_name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as e:
            with contextlib.suppress(Exception):
                await channel.close()
            raise GatewayError("unknown_recipient", f"no bus queue for unit {unit}") from e
        await channel.set_qos(prefetch_count=prefetch or self.prefetch)
        consumer = _AmqpConsumer(self, unit, handler, channel)
        consumer.tag = await queue.consume(consumer.on_message)
        consumer.queue = queue
        self._consumers[id(consumer)] = consumer
        self._in_flight.setdefault(unit, 0)
        return consumer

    async def _settle(
        self, env: codec.Waybill, body: bytes, step: flow.Step, incoming: AbstractIncomingMessage
    ) -> None:
        """Carry the step out (retry copy or dead letter, confirmed), report it, then ack."""
        now = self.clock()
        retry_at = None
        if step.outcome is Outcome.RETRYING:
            assert step.delay_ms is not None
            retry_at = now + step.delay_ms / 1000
            copy = self._amqp_message(env.next_attempt(), body, **{n.H_DELAY: str(step.delay_ms)})
            await self._send(self._delay, copy, env.recipient)
        elif step.outcome in (Outcome.EXPIRED, Outcome.DEAD_LETTERED):
            dead = self._amqp_message(
                env,
                body,
                **{
                    n.H_REASON: step.reason or "",
                    n.H_DEAD_AT: round(now * 1000),
                    n.H_EXPIRED: "1" if step.outcome is Outcome.EXPIRED else "0",
                },
            )
            await self._send(self._default, dead, self.topology.dead_queue)
        if self.observer is not None:
            await self.observer(
                codec.transition(env, step.outcome, now, reason=step.reason, retry_at=retry_at)
            )
        await incoming.ack()

    # -- operators ---------------------------------------------------------------------------

    async def destroy(self, units: Iterable[str]) -> None:
        """Delete this namespace's queues (those of ``units`` and the shared ones) and exchanges,
        messages included. For tests and for retiring a namespace, never on a live gateway."""
        async with self._admin() as admin:
            await admin.delete(sorted(set(units) | self._declared), self.policy.all_delays_ms())

    async def counters(self, units: Iterable[str] | None = None) -> dict[str, UnitCounters]:
        wanted = sorted(self._declared if units is None else set(units))
        async with self._admin(timed=True) as admin:
            depths = await admin.depths(wanted)
            retrying = await admin.count_by_recipient(
                [
                    (self.topology.delay_queue(d), n.delay_queue_arguments(self.topology, d))
                    for d in self.policy.all_delays_ms()
                ]
            )
            dead = await admin.count_by_recipient(
                [(self.topology.dead_queue, n.DEAD_QUEUE_ARGUMENTS)]
            )
        return {
            u: UnitCounters(
                depth=depths[u],
                in_flight=self._in_flight.get(u),
                retrying=retrying.get(u, 0),
                dead=dead.get(u, 0),
            )
            for u in wanted
            if u in depths
        }

    async def dead_letters(self, unit: str) -> list[DeadLetter]:
        async with self._admin(timed=True) as admin:
            return await admin.dead_letters(unit)

    async def redrive(self, unit: str, ids: Collection[str] | None = None) -> int:
        now = self.clock()

        def renew(env: codec.Waybill) -> codec.Waybill:
            return env.redriven(now, self.policy.expires_at(env.priority, now))

        async with self._admin() as admin:
            moved = await admin.redrive(
                unit, None if ids is None else set(ids), renew, self._amqp_message
            )
        if self.observer is not None:
            for env in moved:
                await self.observer(codec.transition(env, Outcome.REDRIVEN, now))
        return len(moved)


class _AmqpConsumer:
    def __init__(
        self, bus: AmqpBus, unit: str, handler: Handler, channel: AbstractRobustChannel
    ) -> None:
        self.bus = bus
        self.unit = unit
        self.handler = handler
        self.channel = channel
        self.queue: Any = None
        self.tag: str | None = None
        self._active: set[asyncio.Task[Any]] = set()

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        bus = self.bus
        bus._in_flight[self.unit] = bus._in_flight.get(self.unit, 0) + 1
        try:
            await self._handle(incoming)
        finally:
            bus._in_flight[self.unit] -= 1
            if task is not None:
                self._active.discard(task)

    async def _handle(self, incoming: AbstractIncomingMessage) -> None:
        bus = self.bus
        if codec.is_notice(incoming.headers):
            await self._stray_notice(incoming)
            return
        try:
            env = codec.parse_headers(incoming.headers)
        except ValueError as e:
            # Not published by a gateway: kept as a dead letter rather than dropped.
            now = bus.clock()
            env = codec.Waybill(
                delivery_id=incoming.message_id or f"foreign-{uuid.uuid4().hex}",
                document_key="",
                recipient=self.unit,
                priority=0,
                attempt=1,
                queued_at=now,
                expires_at=now,
            )
            step = flow.Step(Outcome.DEAD_LETTERED, f"not a gateway message: {e}")
        else:
            body = incoming.body

            async def fetch() -> bytes:
                return body if env.claim is None else await bus.claims.get(env.claim)

            step = await flow.attempt(
                self.handler,
                env,
                fetch,
                redelivered=bool(incoming.redelivered),
                policy=bus.policy,
                clock=bus.clock,
            )
        try:
            await bus._settle(env, incoming.body, step, incoming)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(
                "delivery %s on %s not settled; it will come back",
                env.delivery_id,
                self.unit,
                exc_info=True,
            )
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await incoming.nack(requeue=True)

    async def _stray_notice(self, incoming: AbstractIncomingMessage) -> None:
        """A sender's notice on a queue the gateway consumes: the unit read its queue itself
        when the notice was published and has another delivery mode now. Not a copy: no
        handler, no transition, never a dead letter; handed to ``on_notice`` (the service
        offers it again in the unit's mode), then acknowledged."""
        notice_id = codec._text((incoming.headers or {}).get(n.H_NOTICE_ID, ""))
        try:
            if self.bus.on_notice is not None:
                await self.bus.on_notice(self.unit, notice_id)
            await incoming.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("notice %s on %s not settled; it will come back", notice_id, self.unit)
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await incoming.nack(requeue=True)

    async def stop(self, grace: float = 10.0) -> None:
        # A robust channel's calls wait for the broker to come back: a stopping gateway asks
        # only while connected, and waits at most BROKER_GOODBYE_SECONDS for an answer.
        connected = self.bus._conn is not None and self.bus._conn.connected.is_set()
        if connected and self.queue is not None and self.tag is not None:
            with contextlib.suppress(Exception):  # TimeoutError too
                async with asyncio.timeout(BROKER_GOODBYE_SECONDS):
                    await self.queue.cancel(self.tag)
        await flow.drain(self._active, grace)
        if connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(BROKER_GOODBYE_SECONDS):
                    await self.channel.close()
        self.bus._consumers.pop(id(self), None)
