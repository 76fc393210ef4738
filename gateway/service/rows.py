"""The service's rows as its code reads them: typed values made from query results in one
place, so that no caller handles an untyped row. (The JSON shapes of answers are the API's.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.service.models import delivery_table
from gateway.service.transport import InboxState, Transport

_d = delivery_table.c


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a package for one recipient (a delivery) and where it is."""

    delivery_id: str
    package_id: str
    document_key: str
    sender: str  # of the package
    recipient: str
    mode: str  # pull | push | amqp
    transport: Transport
    attempt: int
    last_outcome: str | None

    COLUMNS = (
        _d.delivery_id,
        _d.package_id,
        _d.document_key,
        _d.sender,
        _d.recipient,
        _d.mode,
        _d.transport,
        _d.attempt,
        _d.last_outcome,
    )

    @classmethod
    def of(cls, row: Any) -> Copy:
        return cls(
            row.delivery_id,
            row.package_id,
            row.document_key,
            row.sender,
            row.recipient,
            row.mode,
            Transport(row.transport),
            row.attempt,
            row.last_outcome,
        )


def select_copies(*extra: Any) -> Select[Any]:
    """SELECT of :class:`Copy` columns (and ``extra`` ones) from the deliveries."""
    return select(*Copy.COLUMNS, *extra)


async def load_copy(conn: AsyncConnection, delivery_id: str) -> Copy | None:
    row = (await conn.execute(select_copies().where(_d.delivery_id == delivery_id))).first()
    return None if row is None else Copy.of(row)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A copy waiting in a pull unit's inbox, as the unit's list shows it."""

    position: int
    delivery_id: str
    package_id: str
    kind: str
    document_key: str
    sender: str
    status: str | None
    subject: str | None
    size: int
    signature_state: str
    queued_at: datetime
    attempt: int


@dataclass(frozen=True, slots=True)
class InboxPage:
    entries: list[InboxEntry]
    next: int | None  # the position to list after, when there is more


@dataclass(frozen=True, slots=True)
class FetchedCopy:
    """A copy a unit fetches from its inbox: the package's bytes exactly as signed."""

    delivery_id: str
    recipient: str
    document_key: str
    signature_state: str
    sha256: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Acknowledgeable:
    """A copy in an inbox, with its inbox state and attempt, as an acknowledgement finds it."""

    copy: Copy
    state: InboxState
    tries: int
