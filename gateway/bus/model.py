"""The bus's values and its port: what is published, what a handler receives, the transitions
reported to the observer, and the ``Bus`` protocol that ``AmqpBus`` and ``LocalBus`` implement.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from gateway.errors import CodeName, GatewayError


@dataclass(frozen=True, slots=True)
class Delivery:
    """One copy of a document for one recipient unit, as the caller publishes it.

    ``delivery_id`` is the caller's stable id of this (document, recipient) pair: it stays the
    same across retries, redeliveries and redrives, so consumers use it as their dedupe key.
    """

    delivery_id: str
    document_key: str
    recipient: str  # the unit code (OrganId) the copy is routed to
    body: bytes
    priority: int = 0  # edXML OtherInfo/Priority: 0 normal, 1 urgent, 2 very urgent, 3-4 flash
    headers: Mapping[str, str] = field(default_factory=dict)  # carried verbatim


@dataclass(frozen=True, slots=True)
class Message:
    """A delivery as a handler receives it, with the body already fetched from the claim check."""

    delivery_id: str
    document_key: str
    recipient: str
    priority: int
    attempt: int  # 1 for the first try; +1 per retry; back to 1 after a redrive
    body: bytes
    queued_at: float  # epoch seconds of the first publish (or of the last redrive)
    expires_at: float  # epoch seconds after which the delivery is expired, not handed out
    redelivered: bool = False  # handed out before without an acknowledgement (crash, restart)
    redrives: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)


class Outcome(enum.StrEnum):
    """The transitions of one delivery that the bus reports, in the ledger's words."""

    QUEUED = "queued"  # publish confirmed by the bus
    DELIVERED = "delivered"  # the handler succeeded; acknowledged right after the observer
    RETRYING = "retrying"  # the handler asked to retry; a retry copy is scheduled
    EXPIRED = "expired"  # its time-to-live passed before a successful attempt; now a dead letter
    DEAD_LETTERED = "dead_lettered"  # permanent failure or too many attempts
    REDRIVEN = "redriven"  # an operator put the dead letter back on its unit queue


@dataclass(frozen=True, slots=True)
class Transition:
    outcome: Outcome
    delivery_id: str
    document_key: str
    recipient: str
    attempt: int
    priority: int
    at: float  # epoch seconds
    reason: str | None = None  # why it is retrying, expired or dead
    retry_at: float | None = None  # RETRYING: when the next attempt is due

    @property
    def at_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery_id: str
    document_key: str
    recipient: str
    attempt: int
    priority: int
    reason: str
    dead_at: float
    expired: bool  # True when it died of its time-to-live rather than of an error


@dataclass(frozen=True, slots=True)
class UnitCounters:
    """Counters of one unit. ``in_flight`` is None where the bus cannot know it (see docs)."""

    depth: int  # ready to be handed out now
    in_flight: int | None  # handed out, not yet acknowledged
    retrying: int  # waiting for a retry
    dead: int  # dead letters (expired included), waiting for an operator

    def as_dict(self) -> dict[str, int | None]:
        return {
            "depth": self.depth,
            "in_flight": self.in_flight,
            "retrying": self.retrying,
            "dead": self.dead,
        }


class RetryableDeliveryError(GatewayError):
    """Raised by a handler: this attempt failed, try again later (endpoint down, timeout, 5xx).

    Any other exception from a handler is a permanent failure: the delivery is dead-lettered at
    once, so a poison message cannot loop.
    """

    def __init__(self, message: str, *, code: CodeName = "delivery_failed") -> None:
        super().__init__(code, message)


Handler = Callable[[Message], Awaitable[None]]
Observer = Callable[[Transition], Awaitable[None]]
# Told (unit, notice id) of a sender's transport notice found on a queue the gateway consumes.
NoticeObserver = Callable[[str, str], Awaitable[None]]


class Subscription(Protocol):
    """A running consumer. ``stop`` cancels it, lets running handlers finish for ``grace``
    seconds and cancels the rest; their deliveries are not acknowledged and come back."""

    unit: str

    async def stop(self, grace: float = 10.0) -> None: ...


class Bus(Protocol):
    """Routing of deliveries to unit endpoints, with retries, expiry and dead letters.

    Every transition of a delivery is reported to the observer given at construction, and a
    consumer acknowledges a delivery only after both the handler and the observer returned.
    """

    async def start(self) -> None:
        """Connect (or open the store) and declare the shared topology."""

    async def close(self, grace: float = 10.0) -> None:
        """Stop every consumer (see ``Subscription.stop``), release connections and files."""

    async def declare(self, units: Iterable[str]) -> None:
        """Create the queue of every unit code; idempotent."""

    async def publish(self, delivery: Delivery) -> None:
        """Return once the bus holds the delivery durably (publisher confirm, commit)."""

    async def publish_many(self, deliveries: Iterable[Delivery]) -> None:
        """Publish concurrently and return once every one is confirmed. Deliveries to
        undeclared units are left out and named in one ``unknown_recipient`` error, raised
        after the others were published and reported."""

    async def consume(
        self, unit: str, handler: Handler, *, prefetch: int | None = None
    ) -> Subscription:
        """Hand the unit's deliveries to ``handler``, at most ``prefetch`` at once."""

    async def counters(self, units: Iterable[str] | None = None) -> dict[str, UnitCounters]:
        """Depth, in-flight, retrying and dead per unit (every declared unit by default)."""

    async def dead_letters(self, unit: str) -> list[DeadLetter]:
        """The unit's dead letters, oldest first."""

    async def redrive(self, unit: str, ids: Collection[str] | None = None) -> int:
        """Put the unit's dead letters (all, or those with these delivery ids) back on its
        queue with a fresh time-to-live and attempt 1; return how many."""
