"""Transport notices: a sender always learns when one of its copies expired, was dead-lettered
or was redriven. The notice is made with that ledger event (``issue``, in the same batch); a
push sender gets it POSTed to its webhook, a sender with its own AMQP consumer (on RabbitMQ)
gets it on its queue, any other waits for it at ``GET /v1/notices`` until it acknowledges it.
Its arrival is the ledger's ``notified`` entry."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import reader
from gateway.errors import GatewayError
from gateway.ledger import Event, EventType
from gateway.service.models import notice_table
from gateway.service.store import Copy
from gateway.service.tokens import Principal, Role
from gateway.service.writer import Batch, Writer

# The events a sender is told of.
NOTIFY = frozenset({EventType.EXPIRED, EventType.DEAD_LETTERED, EventType.REDRIVEN})
MAX_PAGE = 500

_n = notice_table.c


@dataclass(frozen=True, slots=True)
class Notice:
    position: int
    notice_id: str
    unit: str
    event: str
    delivery_id: str
    document_key: str
    recipient: str
    reason: str | None
    created_at: datetime
    attempts: int

    COLUMNS = (
        _n.position,
        _n.notice_id,
        _n.unit,
        _n.event,
        _n.delivery_id,
        _n.document_key,
        _n.recipient,
        _n.reason,
        _n.created_at,
        _n.attempts,
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "event": self.event,
            "delivery_id": self.delivery_id,
            "document_key": self.document_key,
            "recipient": self.recipient,
            "reason": self.reason,
            "at": self.created_at.isoformat(),
        }

    def to_bytes(self) -> bytes:
        """The JSON body of a pushed or published notice."""
        return json.dumps(self.to_json(), ensure_ascii=False).encode()


async def issue(batch: Batch, copy: Copy, event_type: EventType, reason: str | None) -> str | None:
    """The notice of ``event_type`` for ``copy``'s sender, in the batch; its id, or None
    when the event is not one a sender is told of."""
    if event_type not in NOTIFY:
        return None
    notice_id = "n-" + secrets.token_hex(12)
    await batch.conn.execute(
        insert(notice_table).values(
            notice_id=notice_id,
            unit=copy.sender,
            event=event_type.value,
            delivery_id=copy.delivery_id,
            document_key=copy.document_key,
            recipient=copy.recipient,
            reason=reason[:1000] if reason else None,
            created_at=batch.now,
            attempts=0,
        )
    )
    return notice_id


class Notices:
    """The senders' notices in the gateway's database; every change goes through the writer."""

    def __init__(self, writer: Writer, engine: AsyncEngine) -> None:
        self.writer = writer
        self._reader = reader(engine)

    async def waiting(
        self, units: Sequence[str] | None, *, after: int = 0, limit: int = 100
    ) -> tuple[list[Notice], int | None]:
        """Undelivered notices (of ``units``, or every unit's), oldest first, after a
        position; and the cursor of the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise GatewayError("bad_request", f"limit must be 1..{MAX_PAGE}")
        query = (
            select(*Notice.COLUMNS)
            .where(_n.delivered_at.is_(None), _n.position > after)
            .order_by(_n.position)
            .limit(limit)
        )
        if units is not None:
            query = query.where(_n.unit.in_(list(units)))
        async with self._reader.connect() as conn:
            found = [Notice(**row._mapping) for row in await conn.execute(query)]
        return found, found[-1].position if len(found) == limit else None

    async def acknowledge(self, principal: Principal, ids: Sequence[str]) -> int:
        """The unit has these notices (its own among ``ids``): each is delivered and
        ledgered once. Returns how many were newly acknowledged."""
        if principal.role is not Role.UNIT:
            raise GatewayError("forbidden", "only the unit told acknowledges its notices")
        return await self.writer.run(
            lambda batch: self._deliver(batch, principal.unit, ids, "inbox")
        )

    async def delivered(self, notice: Notice, via: str) -> None:
        """The notice reached its unit another way: its webhook answered 2xx (``webhook``),
        or the broker confirmed it on the unit's own queue (``amqp``)."""
        await self.writer.run(
            lambda batch: self._deliver(batch, notice.unit, [notice.notice_id], via)
        )

    async def failed(self, notice: Notice) -> None:
        await self.writer.run(lambda batch: self._failed(batch, notice.notice_id))

    async def reopen(self, unit: str, notice_id: str) -> None:
        """The unit did not read the queue its notice was published on (it has another
        delivery mode now): the notice waits again, to be offered in the unit's mode; its
        arrival then is a second ``notified`` entry."""

        async def reopen(batch: Batch) -> None:
            await batch.conn.execute(
                update(notice_table)
                .where(_n.notice_id == notice_id, _n.unit == unit)
                .values(delivered_at=None)
            )

        await self.writer.run(reopen)

    @staticmethod
    async def _failed(batch: Batch, notice_id: str) -> None:
        await batch.conn.execute(
            update(notice_table).where(_n.notice_id == notice_id).values(attempts=_n.attempts + 1)
        )

    @staticmethod
    async def _deliver(batch: Batch, unit: str, ids: Sequence[str], via: str) -> int:
        query = select(*Notice.COLUMNS).where(
            _n.notice_id.in_(list(ids)), _n.unit == unit, _n.delivered_at.is_(None)
        )
        notices = []
        for n in [Notice(**row._mapping) for row in await batch.conn.execute(query)]:
            # Only where still undelivered: another process may have delivered it meanwhile
            # (each sweeps), and its arrival is ledgered once.
            done = await batch.conn.execute(
                update(notice_table)
                .where(_n.notice_id == n.notice_id, _n.delivered_at.is_(None))
                .values(delivered_at=batch.now)
            )
            if done.rowcount:
                notices.append(n)
        batch.append(
            [
                Event(
                    EventType.NOTIFIED,
                    document=n.document_key,
                    sender=n.unit,
                    recipient=n.recipient,
                    code=n.event,
                    details={"notice_id": n.notice_id, "delivery_id": n.delivery_id, "via": via},
                )
                for n in notices
            ]
        )
        return len(notices)
