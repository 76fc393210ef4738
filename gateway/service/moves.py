"""One transition of one delivery: a ledger event and the delivery row's new transport state,
in the writer's batch; and the bus's observer, which records each transition it reports."""

from __future__ import annotations

import logging
from typing import Any

from gateway.bus import Outcome, Transition
from gateway.ledger import Event, EventType
from gateway.service import store
from gateway.service.evidence import ack_details
from gateway.service.notices import issue
from gateway.service.store import Copy
from gateway.service.transport import OUTCOMES, Transport, transport_allows
from gateway.service.writer import Batch, Writer

log = logging.getLogger(__name__)


async def move(
    batch: Batch,
    copy: Copy,
    transport: Transport,
    event_type: EventType,
    attempt: int,
    details: dict[str, Any],
    *,
    outcome: str | None = None,
    reason: str | None = None,
    published: bool | None = None,
) -> None:
    """Ledger one transition of ``copy`` and record its new transport state; an expiry, a
    dead letter or a redrive also makes the sender's notice."""
    delivery_id = copy.delivery_id
    notice_id = await issue(batch, copy, event_type, reason)
    if notice_id is not None:
        details = {**details, "notice": notice_id}
    batch.append(
        [
            Event(
                event_type,
                document=copy.document_key,
                sender=copy.sender,
                recipient=copy.recipient,
                details={"delivery_id": delivery_id, **details},
            )
        ]
    )
    values: dict[str, Any] = {
        "transport": transport.value,
        "transport_at": batch.now,
        "attempt": attempt,
        "reason": reason,
    }
    if outcome is not None:
        values["last_outcome"] = outcome
    if published is not None:
        values["published"] = published
    await store.update_copy(batch, delivery_id, values)


class TransitionRecorder:
    """The bus's observer: every transition of a copy becomes a ledger event (once), through
    the writer. ``inbox_modes`` are the delivery modes whose copies wait in a pull inbox."""

    def __init__(self, writer: Writer, inbox_modes: frozenset[str]) -> None:
        self.writer = writer
        self.inbox_modes = inbox_modes

    async def __call__(self, t: Transition) -> None:
        await self.writer.run(lambda batch: self._record(batch, t))

    async def _record(self, batch: Batch, t: Transition) -> None:
        copy = await store.load_copy(batch.conn, t.delivery_id)
        if copy is None:
            log.warning("transition %s of unknown delivery %s", t.outcome, t.delivery_id)
            return
        if copy.last_outcome == t.outcome.value and copy.attempt == t.attempt:
            return  # reported again after a crash or redelivery
        transport, event_type = OUTCOMES[t.outcome]
        current = copy.transport
        # A copy for a unit behind an upstream link travels on the link's queue: its events
        # name the link, so that this ledger shows to whom it was handed.
        via = {"link": t.recipient.split(":", 1)[1]} if t.recipient != copy.recipient else {}
        if current is Transport.ACCEPTED:
            # The bus holds the copy; its ``queued`` report may still be on its way (a fast
            # consumer can report ``delivered`` first), so record the queueing now.
            await move(
                batch,
                copy,
                Transport.QUEUED,
                EventType.QUEUED,
                t.attempt,
                {"attempt": t.attempt, **via},
                published=True,
            )
            current = Transport.QUEUED
            if t.outcome is Outcome.QUEUED:
                return
        elif (
            current in (Transport.DEAD, Transport.EXPIRED)
            and t.outcome not in (Outcome.REDRIVEN, Outcome.QUEUED)
            and t.attempt == 1
        ):
            # A dead copy at attempt 1 again was redriven, and its ``redriven`` report
            # (sent after the move) may come after what happened next: record it now.
            await move(
                batch,
                copy,
                Transport.QUEUED,
                EventType.REDRIVEN,
                1,
                {"attempt": 1},
            )
            current = Transport.QUEUED
        nothing_new = (
            t.outcome is Outcome.QUEUED  # published again by the relay
            or (t.outcome is Outcome.DELIVERED and copy.mode in self.inbox_modes)  # in the inbox
            or not transport_allows(current, transport)
        )
        if nothing_new:
            await store.update_copy(
                batch,
                t.delivery_id,
                {"last_outcome": t.outcome.value, "attempt": t.attempt, "published": True},
            )
            return
        details: dict[str, Any] = {"attempt": t.attempt, **via}
        if event_type is EventType.DELIVERED:  # a webhook may have answered with a statement
            details |= await ack_details(batch.conn, t.delivery_id)
        if t.reason:
            details["reason"] = t.reason[:1000]
        if t.retry_at:
            details["retry_at"] = int(t.retry_at)
        await move(
            batch,
            copy,
            transport,
            event_type,
            t.attempt,
            details,
            outcome=t.outcome.value,
            reason=t.reason,
        )
