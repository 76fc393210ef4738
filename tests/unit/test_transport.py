"""A copy's transport moves, what each bus outcome means, and the inbox's answer to an
acknowledgement with the bus's attempt limit."""

from __future__ import annotations

import pytest

from gateway.bus import Outcome, RetryPolicy
from gateway.ledger import EventType
from gateway.service.transport import (
    OUTCOMES,
    InboxState,
    Transport,
    inbox_answer,
    transport_allows,
)


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (Transport.QUEUED, Transport.DELIVERED, True),
        (Transport.QUEUED, Transport.RETRYING, True),
        (Transport.RETRYING, Transport.RETRYING, True),
        (Transport.RETRYING, Transport.EXPIRED, True),
        (Transport.RETRYING, Transport.DEAD, True),
        (Transport.DEAD, Transport.QUEUED, True),
        (Transport.DELIVERED, Transport.RETRYING, False),
        (Transport.DELIVERED, Transport.DELIVERED, False),
        (Transport.EXPIRED, Transport.DELIVERED, False),
        (Transport.EXPIRED, Transport.QUEUED, True),
        (Transport.ACCEPTED, Transport.QUEUED, True),
        (Transport.ACCEPTED, Transport.DELIVERED, False),
        (Transport.DEAD, Transport.DELIVERED, False),
    ],
)
def test_transport_moves(current: Transport, new: Transport, allowed: bool) -> None:
    assert transport_allows(current, new) is allowed


def test_every_bus_outcome_has_a_transport_state_and_its_own_ledger_event() -> None:
    assert {o: t for o, (t, _) in OUTCOMES.items()} == {
        Outcome.QUEUED: Transport.QUEUED,
        Outcome.DELIVERED: Transport.DELIVERED,
        Outcome.RETRYING: Transport.RETRYING,
        Outcome.EXPIRED: Transport.EXPIRED,
        Outcome.DEAD_LETTERED: Transport.DEAD,
        Outcome.REDRIVEN: Transport.QUEUED,
    }
    assert all(event.value == outcome.value for outcome, (_, event) in OUTCOMES.items())


POLICY = RetryPolicy.of_seconds([1], 60, max_attempts=3)


def test_an_acknowledged_copy_is_delivered_at_its_attempt() -> None:
    answer = inbox_answer(True, 2, POLICY)
    assert (answer.state, answer.transport, answer.event, answer.attempt) == (
        InboxState.DONE, Transport.DELIVERED, EventType.DELIVERED, 2,
    )  # fmt: skip


def test_a_failed_copy_is_offered_again_until_the_bus_attempt_limit() -> None:
    again = inbox_answer(False, 2, POLICY)
    assert (again.state, again.transport, again.event, again.attempt) == (
        InboxState.READY, Transport.RETRYING, EventType.RETRYING, 3,
    )  # fmt: skip
    dead = inbox_answer(False, 3, POLICY)
    assert (dead.state, dead.transport, dead.event) == (
        InboxState.DEAD, Transport.DEAD, EventType.DEAD_LETTERED,
    )  # fmt: skip
