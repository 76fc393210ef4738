"""One transition of one delivery: a ledger event and the delivery row's new transport state,
in the writer's batch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from gateway.ledger import Event, EventType
from gateway.service.models import delivery_table
from gateway.service.transport import Transport
from gateway.service.writer import Batch


async def move(
    batch: Batch,
    row: Any,
    transport: Transport,
    event_type: EventType,
    attempt: int,
    details: dict[str, Any],
    *,
    outcome: str | None = None,
    reason: str | None = None,
    published: bool | None = None,
) -> None:
    """Ledger one transition of the delivery ``row`` and record its new transport state."""
    delivery_id = row.delivery_id
    batch.append(
        [
            Event(
                event_type,
                document=row.document_key,
                sender=row.sender,
                recipient=row.recipient,
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
    d = delivery_table.c
    await batch.conn.execute(
        update(delivery_table).where(d.delivery_id == delivery_id).values(**values)
    )
