"""Delivery workers: one bus consumer per unit. Pull units get their copies into the inbox;
push units get each copy POSTed to their webhook; units with their own AMQP consumer read
their RabbitMQ queue themselves. Senders' notices go out the same ways."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Sequence

import aiohttp

from gateway.bus import Message, RetryableDeliveryError, Subscription
from gateway.config import PushSettings
from gateway.directory import Unit
from gateway.errors import ConfigError, GatewayError
from gateway.service import store
from gateway.service.core import Gateway
from gateway.service.evidence import bind_ack, received
from gateway.service.webhooks import WebhookSigner
from gateway.service.writer import Batch

log = logging.getLogger(__name__)

PUSH_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
# Statuses after which a push is tried again; any other 4xx is the receiver refusing it.
_RETRY_STATUSES = {408, 425, 429}


def client_cert(push: PushSettings) -> ssl.SSLContext | None:
    """The TLS context that presents the gateway's client certificate to webhooks, if set."""
    if push.client_cert is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(push.client_cert, push.client_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"the push client certificate cannot be loaded: {e}") from e
    return context


class Deliverer:
    """Starts and stops the consumers of every unit of the directory."""

    def __init__(
        self,
        gateway: Gateway,
        signer: WebhookSigner,
        *,
        native_amqp: bool,
        client_cert: ssl.SSLContext | None = None,
    ) -> None:
        self.gateway = gateway
        self.signer = signer
        self.native_amqp = native_amqp
        self.client_cert = client_cert
        self.session: aiohttp.ClientSession | None = None
        self.subscriptions: dict[str, Subscription] = {}  # unit code -> its consumer
        self.on_push_failure: list[Callable[[str], None]] = []  # told the unit's code

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.client_cert) if self.client_cert else None
        self.session = aiohttp.ClientSession(timeout=PUSH_TIMEOUT, connector=connector)
        for unit in self.gateway.directory:
            await self._consume(unit)

    async def _consume(self, unit: Unit) -> None:
        handler = self._handler(unit)
        if handler is not None:
            self.subscriptions[unit.code] = await self.gateway.bus.consume(unit.code, handler)

    async def refresh(self, units: list[Unit], removed: Sequence[str], grace: float = 10.0) -> None:
        """After a reload: ``units`` (new ones, or with a new delivery mode) get the consumer
        of their mode; the units ``removed`` from the directory lose theirs."""
        for code in [*removed, *(u.code for u in units)]:
            subscription = self.subscriptions.pop(code, None)
            if subscription is not None:
                await subscription.stop(grace)
        for unit in units:
            await self._consume(unit)

    def _handler(self, unit: Unit):  # type: ignore[no-untyped-def]
        mode = str(unit.delivery)
        if mode == "push":
            return self.push
        if mode == "pull" or (mode == "amqp" and not self.native_amqp):
            return self.to_inbox
        return None  # amqp on RabbitMQ: the unit's own consumer reads gw.unit.<code>

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.gather(
            *(s.stop(grace) for s in self.subscriptions.values()), return_exceptions=True
        )
        self.subscriptions.clear()
        if self.session is not None:
            await self.session.close()

    async def to_inbox(self, message: Message) -> None:
        try:
            await self.gateway.inboxes.put(
                message.delivery_id, message.recipient, message.attempt, message.expires_at
            )
        except GatewayError:
            raise
        except Exception as e:  # the database is busy or down: try again later
            raise RetryableDeliveryError(f"could not store the copy in the inbox: {e}") from e

    async def push(self, message: Message) -> None:
        try:
            await self._push(message)
        except (RetryableDeliveryError, GatewayError):
            for listener in self.on_push_failure:
                listener(message.recipient)
            raise

    async def _keep_acknowledgement(self, code: str, delivery_id: str, answer: bytes) -> None:
        """A webhook's 2xx answer may hold ``{"acknowledgement": "<JWS>"}``, the unit's signed
        statement of reception: checked and kept for the ``delivered`` entry. A unit that must
        sign and did not, or a statement that does not verify, is refused (dead-lettered,
        with the code as the reason)."""
        statement = None
        if answer:
            try:
                found = json.loads(answer)
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get("acknowledgement"), str):
                statement = found["acknowledgement"]
        g = self.gateway
        ack = received(g.settings.ledger, g.trust, g.directory, g.clock(), code, statement)
        if ack.statement is None:
            return

        async def keep(batch: Batch) -> None:
            copy = await store.load_copy(batch.conn, delivery_id)
            if copy is not None:
                await bind_ack(batch.conn, ack, copy, batch.now)

        await g.writer.run(keep)

    async def push_notices(self) -> int:
        """POST the waiting notices of push senders to their webhooks (JSON, signed like a
        package push, ``X-Gateway-Notice`` naming the event); a failure is tried again at the
        next sweep. Returns how many arrived."""
        push = [u.code for u in self.gateway.directory if str(u.delivery) == "push" and u.endpoint]
        if not push or self.session is None:
            return 0
        notices, _ = await self.gateway.notices.waiting(push, limit=100)
        arrived = 0
        for notice in notices:
            unit = self.gateway.directory.get(notice.unit)
            if unit is None or not unit.endpoint:  # reloaded since: its next sweep decides
                continue
            body = notice.to_bytes()
            headers = {
                "Content-Type": "application/json",
                "X-Gateway-Notice": notice.event,
                "X-Gateway-Delivery-Id": notice.delivery_id,
                "X-Gateway-Document-Key": notice.document_key,
                **await self.signer.headers(unit.code, notice.notice_id, body),
            }
            try:
                async with self.session.post(unit.endpoint, data=body, headers=headers) as r:
                    ok = 200 <= r.status < 300
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                await self.gateway.notices.delivered(notice, "webhook")
                arrived += 1
            else:
                await self.gateway.notices.failed(notice)
        return arrived

    async def amqp_notices(self) -> int:
        """Publish the waiting notices of senders with their own AMQP consumer to their queue
        (RabbitMQ only: on the embedded bus such units are served by a pull inbox and read
        ``GET /v1/notices``); each is notified once the broker confirmed it. A broker out of
        reach ends the round: the notices wait for the next sweep. Returns how many arrived."""
        if not self.native_amqp:
            return 0
        from gateway.bus.amqp import AmqpBus

        bus = self.gateway.bus
        native = [u.code for u in self.gateway.directory if str(u.delivery) == "amqp"]
        if not native or not isinstance(bus, AmqpBus):
            return 0
        notices, _ = await self.gateway.notices.waiting(native, limit=100)
        arrived = 0
        for notice in notices:
            unit = self.gateway.directory.get(notice.unit)
            if unit is None or str(unit.delivery) != "amqp":  # reloaded since
                continue
            try:
                await bus.publish_notice(
                    notice.unit, notice.notice_id, notice.event, notice.to_bytes()
                )
            except GatewayError as e:
                await self.gateway.notices.failed(notice)
                if e.code == "bus_unavailable":
                    log.warning("notices wait for the broker: %s", e.message)
                    break
                log.warning("notice %s not published: %s", notice.notice_id, e.message)
                continue
            await self.gateway.notices.delivered(notice, "amqp")
            arrived += 1
        return arrived

    async def _push(self, message: Message) -> None:
        unit = self.gateway.directory.get(message.recipient)
        if unit is None or not unit.endpoint:
            raise GatewayError("delivery_failed", f"{message.recipient} has no push endpoint")
        assert self.session is not None
        headers = {
            "Content-Type": "application/xml",
            "X-Gateway-Delivery-Id": message.delivery_id,
            "X-Gateway-Document-Key": message.document_key,
            "X-Gateway-Attempt": str(message.attempt),
            # the same webhook-id on every attempt: the receiver's key for idempotency
            **await self.signer.headers(unit.code, message.delivery_id, message.body),
        }
        try:
            async with self.session.post(unit.endpoint, data=message.body, headers=headers) as r:
                if 200 <= r.status < 300:
                    answer = await r.read() if r.content_type == "application/json" else b""
                    await self._keep_acknowledgement(unit.code, message.delivery_id, answer)
                    return
                text = (await r.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RetryableDeliveryError(f"{unit.endpoint}: {type(e).__name__}: {e}") from e
        reason = f"{unit.endpoint} answered {r.status}: {text}"
        if r.status >= 500 or r.status in _RETRY_STATUSES:
            raise RetryableDeliveryError(reason)
        raise GatewayError("delivery_failed", reason)
