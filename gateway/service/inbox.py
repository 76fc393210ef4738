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
from gateway.service.rows import Copy, FetchedCopy, InboxEntry, InboxPage, select_copies
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

    async def page(self, unit: str, *, after: int = 0, limit: int = 50) -> InboxPage:
        """The unit's waiting copies after position ``after``, oldest first."""
        i, p = inbox_table.c, package_table.c
        query = (
            select(
                i.position,
                i.delivery_id,
                i.package_id,
                p.kind,
                p.document_key,
                p.sender,
                p.status_code.label("status"),
                p.subject,
                p.size,
                p.signature_state,
                i.queued_at,
                i.attempt,
            )
            .join(package_table, p.package_id == i.package_id)
            .where(i.recipient == unit, i.state == InboxState.READY, i.position > after)
            .order_by(i.position)
            .limit(limit + 1)
        )
        async with self._reader.connect() as conn:
            entries = [InboxEntry(**row._mapping) for row in await conn.execute(query)]
        more = len(entries) > limit
        return InboxPage(entries[:limit], entries[limit - 1].position if more else None)

    @staticmethod
    def _check_access(principal: Principal, recipient: str | None, delivery_id: str) -> None:
        """The copy exists (``recipient`` is its recipient) and the principal may touch it: a
        unit only its own."""
        if recipient is None:
            raise GatewayError("not_found", f"no inbox item {delivery_id}")
        if principal.role is Role.UNIT and recipient != principal.unit:
            raise GatewayError("forbidden", f"{delivery_id} is not in {principal.unit}'s inbox")

    async def item(self, principal: Principal, delivery_id: str) -> FetchedCopy:
        """A copy the principal may read, with its package's bytes: one query."""
        i, p = inbox_table.c, package_table.c
        query = (
            select(
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
            row = (await conn.execute(query)).first()
        self._check_access(principal, row.recipient if row else None, delivery_id)
        assert row is not None
        body = await self.bodies.get(row.raw_claim) if row.raw_claim else row.raw
        return FetchedCopy(
            delivery_id, row.recipient, row.document_key, row.signature_state, row.sha256, body
        )

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
        query = (  # the copy and its inbox state, in one query
            select_copies(i.state, i.attempt.label("tries"))
            .join(inbox_table, i.delivery_id == d.delivery_id)
            .where(d.delivery_id == delivery_id)
        )
        row = (await conn.execute(query)).first()
        self._check_access(principal, row.recipient if row else None, delivery_id)
        assert row is not None
        copy = Copy.of(row)
        if row.state != InboxState.READY:
            return copy.transport.value  # answered before: the same answer again
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
            copy,
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
        query = (
            select_copies(i.attempt.label("tries"))
            .join(inbox_table, i.delivery_id == d.delivery_id)
            .where(i.state == InboxState.READY, i.expires_at < batch.now)
        )
        items = (await batch.conn.execute(query)).all()
        for row in items:
            await batch.conn.execute(
                update(inbox_table)
                .where(i.delivery_id == row.delivery_id)
                .values(state=InboxState.EXPIRED)
            )
            await move(
                batch,
                Copy.of(row),
                Transport.EXPIRED,
                EventType.EXPIRED,
                row.tries,
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
        now = batch.now
        query = select_copies().join(inbox_table, i.delivery_id == d.delivery_id).where(*condition)
        items = [Copy.of(row) for row in await batch.conn.execute(query)]
        for copy in items:
            await batch.conn.execute(
                update(inbox_table)
                .where(i.delivery_id == copy.delivery_id)
                .values(state=InboxState.READY, attempt=1, expires_at=now + ttl, queued_at=now)
            )
            await move(batch, copy, Transport.QUEUED, EventType.REDRIVEN, 1, {"via": "inbox"})
        return len(items)
