"""One transition of one delivery: a ledger event and the delivery row's new transport state,
in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger import Event, EventType, SqlLedger
from gateway.service.models import delivery_table
from gateway.workflow import Transport


async def move(
    ledger: SqlLedger,
    conn: AsyncConnection,
    row: Any,
    transport: Transport,
    event_type: EventType,
    attempt: int,
    details: dict[str, Any],
    *,
    at: datetime,
    outcome: str | None = None,
    reason: str | None = None,
    published: bool | None = None,
) -> None:
    """Ledger one transition of the delivery ``row`` and record its new transport state."""
    delivery_id = row.delivery_id
    await ledger.append_in(
        conn,
        [
            Event(
                event_type,
                document=row.document_key,
                sender=row.sender,
                recipient=row.recipient,
                details={"delivery_id": delivery_id, **details},
            )
        ],
    )
    values: dict[str, Any] = {
        "transport": transport.value,
        "transport_at": at,
        "attempt": attempt,
        "reason": reason,
    }
    if outcome is not None:
        values["last_outcome"] = outcome
    if published is not None:
        values["published"] = published
    d = delivery_table.c
    await conn.execute(update(delivery_table).where(d.delivery_id == delivery_id).values(**values))
