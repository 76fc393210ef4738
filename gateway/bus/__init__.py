"""The bus between unit endpoints: the ``Bus`` protocol, ``AmqpBus`` (RabbitMQ) and ``LocalBus``
(embedded, SQLite), chosen by ``open_bus`` from the settings. See docs/bus.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.bus.claims import ClaimStore
from gateway.bus.model import (
    Bus,
    DeadLetter,
    Delivery,
    Handler,
    Message,
    NoticeObserver,
    Observer,
    Outcome,
    RetryableDeliveryError,
    Subscription,
    Transition,
    UnitCounters,
)
from gateway.bus.naming import Topology
from gateway.bus.policy import RetryPolicy
from gateway.config import Settings
from gateway.lazy import on_first_use

if TYPE_CHECKING:
    from gateway.bus.amqp import AmqpBus
    from gateway.bus.local import LocalBus

# The two buses load their libraries (aio-pika, SQLite) on first use: the bus's model and
# retry policy need neither.
_BUSES = {"AmqpBus": "gateway.bus.amqp", "LocalBus": "gateway.bus.local"}


__getattr__ = on_first_use(__name__, _BUSES)


__all__ = [
    "AmqpBus",
    "Bus",
    "ClaimStore",
    "DeadLetter",
    "Delivery",
    "Handler",
    "LocalBus",
    "Message",
    "NoticeObserver",
    "Observer",
    "Outcome",
    "RetryPolicy",
    "RetryableDeliveryError",
    "Subscription",
    "Topology",
    "Transition",
    "UnitCounters",
    "open_bus",
]


def open_bus(
    settings: Settings,
    *,
    observer: Observer | None = None,
    policy: RetryPolicy | None = None,
    on_notice: NoticeObserver | None = None,
) -> AmqpBus | LocalBus:
    """``AmqpBus`` when GATEWAY_AMQP_URL is set, else ``LocalBus`` in ``<home>/bus.db``.
    ``on_notice`` is for RabbitMQ only, where senders' notices travel on unit queues.

    Not started: ``async with open_bus(settings) as bus`` (or ``await bus.start()``). Large
    bodies go to ``<home>/claims`` in both cases.
    """
    bus = settings.bus
    claims = ClaimStore(settings.home / "claims")
    policy = policy or RetryPolicy.from_settings(bus)
    if settings.amqp_url is not None:
        from gateway.bus.amqp import AmqpBus

        return AmqpBus(
            settings.amqp_url.reveal(),
            claims=claims,
            policy=policy,
            namespace=bus.namespace,
            claim_check_bytes=bus.claim_check_bytes,
            publish_window=bus.publish_window,
            publish_timeout=bus.publish_timeout,
            prefetch=bus.prefetch,
            observer=observer,
            on_notice=on_notice,
            connect_timeout=settings.connect_timeout,
            operation_timeout=settings.operation_timeout,
        )
    from gateway.bus.local import LocalBus

    return LocalBus(
        settings.home / "bus.db",
        claims=claims,
        policy=policy,
        claim_check_bytes=bus.claim_check_bytes,
        prefetch=bus.prefetch,
        lease=bus.lease,
        observer=observer,
    )


if TYPE_CHECKING:  # both implementations satisfy the protocol, checked by mypy

    def _conforms(amqp: AmqpBus, local: LocalBus) -> tuple[Bus, Bus]:
        return amqp, local
