"""Where each copy of a package is, in one place: the transport states and the moves between
them, the pull inbox's own states, what a bus outcome means for both and for the ledger, and
the inbox's answer to an acknowledgement, with the bus's retry policy as its attempt limit.

Per (document, recipient) a copy moves through ``accepted`` (committed, for the bus), ``queued``,
``delivered``, ``retrying``, ``expired`` and ``dead``; a redrive puts a dead or expired copy back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.bus import Outcome, RetryPolicy
from gateway.ledger import EventType


class Transport(enum.StrEnum):
    ACCEPTED = "accepted"  # in the ledger and the outbox, not yet confirmed by the bus
    QUEUED = "queued"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    EXPIRED = "expired"
    DEAD = "dead"


# Transport moves the bus may report, and what they lead to. A redrive puts a dead or expired
# delivery back in the queue; a delivered one stays delivered (late duplicates change nothing).
_TRANSPORT_MOVES: dict[Transport, frozenset[Transport]] = {
    Transport.ACCEPTED: frozenset({Transport.QUEUED}),
    Transport.QUEUED: frozenset(
        {Transport.DELIVERED, Transport.RETRYING, Transport.EXPIRED, Transport.DEAD}
    ),
    Transport.RETRYING: frozenset(
        {Transport.DELIVERED, Transport.RETRYING, Transport.EXPIRED, Transport.DEAD}
    ),
    Transport.DEAD: frozenset({Transport.QUEUED}),
    Transport.EXPIRED: frozenset({Transport.QUEUED}),
    Transport.DELIVERED: frozenset(),
}


# A copy is live while it may still be delivered: committed (and perhaps still on its way to
# the bus), queued, or being retried. Delivered, expired and dead copies are over until an
# operator redrives them.
LIVE = frozenset({Transport.ACCEPTED, Transport.QUEUED, Transport.RETRYING})


def transport_allows(current: Transport, new: Transport) -> bool:
    """Whether a delivery may move from ``current`` to ``new`` (late duplicates may not)."""
    return new in _TRANSPORT_MOVES[current]


class InboxState(enum.StrEnum):
    """A copy in a pull unit's inbox."""

    READY = "ready"  # listed for the unit until it acknowledges (or fails) it
    DONE = "done"  # acknowledged: delivered
    DEAD = "dead"  # failed too often: an operator must act
    EXPIRED = "expired"  # not fetched before its time-to-live


# What a bus transition means for the copy's transport state, and the ledger event it is.
OUTCOMES: dict[Outcome, tuple[Transport, EventType]] = {
    Outcome.QUEUED: (Transport.QUEUED, EventType.QUEUED),
    Outcome.DELIVERED: (Transport.DELIVERED, EventType.DELIVERED),
    Outcome.RETRYING: (Transport.RETRYING, EventType.RETRYING),
    Outcome.EXPIRED: (Transport.EXPIRED, EventType.EXPIRED),
    Outcome.DEAD_LETTERED: (Transport.DEAD, EventType.DEAD_LETTERED),
    Outcome.REDRIVEN: (Transport.QUEUED, EventType.REDRIVEN),
}


@dataclass(frozen=True)
class InboxMove:
    state: InboxState
    transport: Transport
    event: EventType
    attempt: int  # the copy's attempt from now on


def inbox_answer(done: bool, attempt: int, policy: RetryPolicy) -> InboxMove:
    """The unit's answer for attempt ``attempt`` of a copy in its inbox: done delivers it; a
    failure offers it again, up to the bus's attempt limit, then leaves it dead."""
    if done:
        return InboxMove(InboxState.DONE, Transport.DELIVERED, EventType.DELIVERED, attempt)
    if attempt >= policy.max_attempts:
        return InboxMove(InboxState.DEAD, Transport.DEAD, EventType.DEAD_LETTERED, attempt + 1)
    return InboxMove(InboxState.READY, Transport.RETRYING, EventType.RETRYING, attempt + 1)
