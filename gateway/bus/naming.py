"""Pure naming of the bus topology and of the message headers: the one place that says what a
queue, an exchange or a header is called. Every name starts with the namespace (``gw``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError

# Message headers. Callers' own headers may use neither prefix.
H_DELIVERY_ID = "gw-delivery-id"
H_DOCUMENT_KEY = "gw-document-key"
H_RECIPIENT = "gw-recipient"
H_ATTEMPT = "gw-attempt"
H_PRIORITY = "gw-priority"
H_QUEUED_AT = "gw-queued-at"  # epoch milliseconds
H_EXPIRES_AT = "gw-expires-at"  # epoch milliseconds
H_CLAIM = "gw-claim"  # claim-check reference of a body stored outside the message
H_REDRIVES = "gw-redrives"
H_REASON = "gw-reason"  # dead letters: why
H_DEAD_AT = "gw-dead-at"  # dead letters: epoch milliseconds
H_EXPIRED = "gw-expired"  # dead letters: "1" when the time-to-live ran out
H_DELAY = "gw-delay"  # routing of a retry copy to its delay queue (milliseconds)
# A unit's queue holds two kinds of message: copies (no gw-kind) and, for a unit with its own
# AMQP consumer, the transport notices it gets as a sender (gw-kind: notice). A notice carries
# none of a copy's headers.
H_KIND = "gw-kind"
KIND_NOTICE = "notice"
H_NOTICE_ID = "gw-notice-id"
H_NOTICE = "gw-notice"  # the event told: expired, dead_lettered, redriven
RESERVED_HEADER_PREFIXES = ("gw-", "x-")

MAX_UNIT_CODE = 200  # queue names are at most 255 bytes; the namespace needs the rest


def check_unit_code(code: str) -> str:
    """The code itself when it can name a queue; ``organ_id_invalid`` otherwise.

    Real OrganIds are messier than the national format (``G12``, ``vxp.saas.03``), so only
    what would break a queue name is refused: emptiness, length, whitespace and controls.
    """
    if (
        not code
        or len(code.encode()) > MAX_UNIT_CODE
        or any(c.isspace() or not c.isprintable() for c in code)
    ):
        raise GatewayError("organ_id_invalid", f"{code!r} cannot name a unit queue")
    return code


def format_delay(delay_ms: int) -> str:
    """``30s`` for whole seconds, ``200ms`` otherwise: readable and unambiguous."""
    return f"{delay_ms // 1000}s" if delay_ms % 1000 == 0 else f"{delay_ms}ms"


@dataclass(frozen=True, slots=True)
class Topology:
    """Names of every exchange and queue of one gateway (``namespace`` keeps several apart)."""

    namespace: str = "gw"

    @property
    def deliver_exchange(self) -> str:
        """Direct exchange; routing key = unit code; one binding per unit queue."""
        return f"{self.namespace}.deliver"

    @property
    def delay_exchange(self) -> str:
        """Headers exchange routing a retry copy to the delay queue of its ``gw-delay``."""
        return f"{self.namespace}.delay"

    @property
    def dead_queue(self) -> str:
        """The one dead-letter queue of every unit; ``gw-recipient`` says whose."""
        return f"{self.namespace}.dead"

    def unit_queue(self, code: str) -> str:
        return f"{self.namespace}.unit.{check_unit_code(code)}"

    def delay_queue(self, delay_ms: int) -> str:
        if delay_ms <= 0:
            raise ValueError(f"a delay must be positive, got {delay_ms} ms")
        return f"{self.namespace}.delay.{format_delay(delay_ms)}"

    def unit_of_queue(self, queue: str) -> str | None:
        """The unit code of a unit queue name, None for any other name."""
        prefix = f"{self.namespace}.unit."
        return queue[len(prefix) :] if queue.startswith(prefix) else None


# Queue arguments. Quorum queues everywhere: replicated, and their dead-lettering can be
# at-least-once (which needs overflow=reject-publish on the source queue).
UNIT_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}
DEAD_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    # Readers of the dead-letter queue (status, listing, redrive) take turns.
    "x-single-active-consumer": True,
}


def delay_queue_arguments(topology: Topology, delay_ms: int) -> dict[str, Any]:
    """A delay queue holds retry copies for ``delay_ms`` and then dead-letters them, with their
    original routing key (the unit code), back into the deliver exchange."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": topology.deliver_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
    }


def delay_binding_arguments(delay_ms: int) -> dict[str, Any]:
    return {"x-match": "all", H_DELAY: str(delay_ms)}
