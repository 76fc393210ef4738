"""Pull inboxes: where the copies of pull units wait until the unit's system fetches and
acknowledges them (the receive/acknowledge cycle of the national axis)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.bus import ClaimStore, RetryPolicy
from gateway.db.engine import reader
from gateway.errors import GatewayError
from gateway.ledger import EventType
from gateway.service.models import delivery_table, inbox_table, package_table
from gateway.service.moves import move
from gateway.service.tokens import Principal, Role
from gateway.service.transport import InboxState, Transport, inbox_answer
from gateway.service.writer import Batch, Writer


class Inboxes:
    """The inboxes of every pull unit, in the gateway's database. Copies are placed in them
    when their package is accepted (in the same transaction); every change goes through the
    writer. The attempt limit and the time-to-live are the bus's retry policy."""

    def __init__(
        self,
        writer: Writer,
        engine: AsyncEngine,
        policy: RetryPolicy,
        bodies: ClaimStore,
    ) -> None:
        self.writer = writer
        self.engine = engine
        self._reader = reader(engine)  # listing and fetching: one statement, no transaction
        self.policy = policy
        self.bodies = bodies

    def row(
        self, delivery_id: str, recipient: str, package_id: str, priority: int, now: datetime
    ) -> dict[str, Any]:
        """The inbox row of a new copy, first attempt, expiring by the retry policy."""
        return {
            "delivery_id": delivery_id,
            "recipient": recipient,
            "package_id": package_id,
            "state": InboxState.READY,
            "attempt": 1,
            "queued_at": now,
            "expires_at": datetime.fromtimestamp(
                self.policy.expires_at(priority, now.timestamp()), UTC
            ),
        }

    async def put(self, delivery_id: str, recipient: str, attempt: int, expires_at: float) -> None:
        """Place a copy that came over the bus in a pull unit's inbox (idempotent on the
        delivery id): copies accepted before inboxes were filled at acceptance."""
        await self.writer.run(
            lambda batch: self._put(batch, delivery_id, recipient, attempt, expires_at)
        )

    async def _put(
        self, batch: Batch, delivery_id: str, recipient: str, attempt: int, expires_at: float
    ) -> None:
        d, i = delivery_table.c, inbox_table.c
        conn = batch.conn
        if await conn.scalar(select(i.position).where(i.delivery_id == delivery_id)):
            return
        package_id = await conn.scalar(select(d.package_id).where(d.delivery_id == delivery_id))
        if package_id is None:
            raise GatewayError("not_found", f"no delivery {delivery_id}")
        await conn.execute(
            insert(inbox_table).values(
                delivery_id=delivery_id,
                recipient=recipient,
                package_id=package_id,
                state=InboxState.READY,
                attempt=max(attempt, 1),
                queued_at=batch.now,
                expires_at=datetime.fromtimestamp(expires_at, UTC),
            )
        )

    async def page(self, unit: str, *, after: int = 0, limit: int = 50) -> dict[str, Any]:
        i, p = inbox_table.c, package_table.c
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        i.position,
                        i.delivery_id,
                        i.package_id,
                        i.queued_at,
                        i.attempt,
                        p.kind,
                        p.document_key,
                        p.sender,
                        p.status_code,
                        p.subject,
                        p.size,
                        p.signature_state,
                    )
                    .join(package_table, p.package_id == i.package_id)
                    .where(i.recipient == unit, i.state == InboxState.READY, i.position > after)
                    .order_by(i.position)
                    .limit(limit + 1)
                )
            ).all()
        items = [
            {
                "delivery_id": r.delivery_id,
                "package_id": r.package_id,
                "kind": r.kind,
                "document_key": r.document_key,
                "sender": r.sender,
                "status": r.status_code,
                "subject": r.subject,
                "size": r.size,
                "signature_state": r.signature_state,
                "queued_at": r.queued_at.isoformat(),
                "attempt": r.attempt,
            }
            for r in rows[:limit]
        ]
        more = len(rows) > limit
        return {"items": items, "next": str(rows[limit - 1].position) if more else None}

    @staticmethod
    def _accessible(principal: Principal, item: Any, delivery_id: str) -> Any:
        """``item``, the row of a copy, if it exists and the principal may touch it (a unit
        only its own)."""
        if item is None:
            raise GatewayError("not_found", f"no inbox item {delivery_id}")
        if principal.role is Role.UNIT and item.recipient != principal.unit:
            raise GatewayError("forbidden", f"{delivery_id} is not in {principal.unit}'s inbox")
        return item

    async def item(self, principal: Principal, delivery_id: str) -> tuple[Any, bytes]:
        """A copy the principal may read, with its package's columns, and the package's bytes:
        one query."""
        i, p = inbox_table.c, package_table.c
        query = (
            select(
                i.delivery_id,
                i.recipient,
                p.document_key,
                p.signature_state,
                p.sha256,
                p.raw,
                p.raw_claim,
            )
            .join(package_table, p.package_id == i.package_id)
            .where(i.delivery_id == delivery_id)
        )
        async with self._reader.connect() as conn:
            item = self._accessible(principal, (await conn.execute(query)).first(), delivery_id)
        body = await self.bodies.get(item.raw_claim) if item.raw_claim else item.raw
        return item, body

    async def ack(
        self, principal: Principal, delivery_id: str, done: bool, reason: str | None
    ) -> str:
        """The unit's answer for a copy: done delivers it; fail offers it again, up to the bus's
        attempt limit, then leaves it dead for an operator. Returns the transport state."""
        if principal.role is not Role.UNIT:
            raise GatewayError("forbidden", "only the recipient unit acknowledges its inbox")
        return await self.writer.run(
            lambda batch: self._ack(batch, principal, delivery_id, done, reason)
        )

    async def _ack(
        self, batch: Batch, principal: Principal, delivery_id: str, done: bool, reason: str | None
    ) -> str:
        i, d = inbox_table.c, delivery_table.c
        conn = batch.conn
        query = (  # the delivery and its inbox state, in one query
            select(delivery_table, i.state.label("inbox_state"), i.attempt.label("tries"))
            .join(inbox_table, i.delivery_id == d.delivery_id)
            .where(d.delivery_id == delivery_id)
        )
        row = self._accessible(principal, (await conn.execute(query)).first(), delivery_id)
        if row.inbox_state != InboxState.READY:
            return str(row.transport)  # answered before: the same answer again
        details: dict[str, Any] = {"via": "inbox", "attempt": row.tries}
        if not done:
            details["reason"] = (reason or "no reason given")[:1000]
        answer = inbox_answer(done, row.tries, self.policy)
        await conn.execute(
            update(inbox_table)
            .where(i.delivery_id == delivery_id)
            .values(
                state=answer.state,
                attempt=answer.attempt,
                reason=None if done else details["reason"],
            )
        )
        await move(
            batch,
            row,
            answer.transport,
            answer.event,
            row.tries,
            details,
            reason=None if done else details["reason"],
        )
        return answer.transport.value

    async def expire(self) -> int:
        """Copies that waited in an inbox past their time-to-live expire (the sender sees it)."""
        return await self.writer.run(self._expire)

    async def _expire(self, batch: Batch) -> int:
        i, d = inbox_table.c, delivery_table.c
        now, conn = batch.now, batch.conn
        items = (
            await conn.execute(
                select(inbox_table.c.delivery_id, i.attempt).where(
                    i.state == InboxState.READY, i.expires_at < now
                )
            )
        ).all()
        for item in items:
            row = (
                await conn.execute(select(delivery_table).where(d.delivery_id == item.delivery_id))
            ).first()
            assert row is not None
            await conn.execute(
                update(inbox_table)
                .where(i.delivery_id == item.delivery_id)
                .values(state=InboxState.EXPIRED)
            )
            await move(
                batch,
                row,
                Transport.EXPIRED,
                EventType.EXPIRED,
                item.attempt,
                {"via": "inbox", "reason": "not fetched before its time-to-live"},
                reason="not fetched before its time-to-live",
            )
        return len(items)

    async def redrive(self, unit: str, ids: Sequence[str] | None) -> int:
        """Put the unit's dead or expired inbox copies back with a fresh time-to-live."""
        return await self.writer.run(lambda batch: self._redrive(batch, unit, ids))

    async def _redrive(self, batch: Batch, unit: str, ids: Sequence[str] | None) -> int:
        i, d = inbox_table.c, delivery_table.c
        condition = [i.recipient == unit, i.state.in_((InboxState.DEAD, InboxState.EXPIRED))]
        if ids is not None:
            condition.append(i.delivery_id.in_(list(ids)))
        ttl = timedelta(milliseconds=self.policy.normal.ttl_ms)
        now, conn = batch.now, batch.conn
        items = (await conn.execute(select(i.delivery_id).where(*condition))).scalars().all()
        for delivery_id in items:
            row = (
                await conn.execute(select(delivery_table).where(d.delivery_id == delivery_id))
            ).first()
            assert row is not None
            await conn.execute(
                update(inbox_table)
                .where(i.delivery_id == delivery_id)
                .values(state=InboxState.READY, attempt=1, expires_at=now + ttl, queued_at=now)
            )
            await move(
                batch,
                row,
                Transport.QUEUED,
                EventType.REDRIVEN,
                1,
                {"via": "inbox"},
            )
        return len(items)
