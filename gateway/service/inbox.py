"""Pull inboxes: where the copies of pull units wait until the unit's system fetches and
acknowledges them (the receive/acknowledge cycle of the national axis)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.bus import ClaimStore, RetryPolicy
from gateway.db.engine import reader
from gateway.db.together import ReadTogether
from gateway.db.wakeups import Wakeups
from gateway.errors import GatewayError
from gateway.ledger import EventType
from gateway.service import store
from gateway.service.evidence import Received, bind_ack
from gateway.service.moves import move
from gateway.service.store import InboxEntry, InboxPage
from gateway.service.tokens import Principal, Role
from gateway.service.transport import InboxState, Transport, inbox_answer
from gateway.service.writer import Batch, Writer

# A listing that carries its copies' packages (GET /v1/inbox?include=package) carries each one
# up to LISTED_PACKAGE bytes, and LISTED_PAGE bytes of packages in all; the others are fetched
# on their own.
LISTED_PACKAGE = 1 << 20
LISTED_PAGE = 8 << 20


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
class InboxAck:
    """A unit's answer for one copy in its inbox: done (with its signed statement of
    reception, if any), or not done with a reason (the copy is offered again)."""

    delivery_id: str
    done: bool = True
    reason: str | None = None
    statement: str | None = None  # a compact JWS (gateway.evidence), with done only


def check_acknowledger(principal: Principal) -> None:
    """Only a unit acknowledges copies, and only those of its own inbox (checked per copy)."""
    if principal.role is not Role.UNIT:
        raise GatewayError("forbidden", "only the recipient unit acknowledges its inbox")


class Inboxes:
    """The inboxes of every pull unit, in the gateway's database. Copies are placed in them
    when their package is accepted (in the same transaction); every change goes through the
    writer. The attempt limit and the time-to-live are the bus's retry policy. A unit's system
    may wait for its next copy (:meth:`page` with ``wait``): it is woken when a commit places a
    copy in its inbox, in whichever process (gateway.db.wakeups)."""

    def __init__(
        self,
        writer: Writer,
        engine: AsyncEngine,
        policy: RetryPolicy,
        bodies: ClaimStore,
        wakeups: Wakeups,
    ) -> None:
        self.writer = writer
        self.engine = engine
        self._reader = reader(engine)  # listing and fetching: one statement, no transaction
        self._items = ReadTogether(self._reader, store.inbox_items)  # fetches at one moment
        self.policy = policy
        self.bodies = bodies
        self.wakeups = wakeups

    def placed(self, batch: Batch, units: Collection[str]) -> None:
        """Copies are ready in the inboxes of ``units`` once ``batch`` commits: wake their
        waiting systems then."""
        if units:
            topics = [_topic(unit) for unit in units]
            batch.after_commit.append(lambda: self.wakeups.changed(topics))

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
        conn = batch.conn
        if await store.in_inbox(conn, delivery_id):
            return
        package_id = await store.package_of_copy(conn, delivery_id)
        if package_id is None:
            raise GatewayError("not_found", f"no delivery {delivery_id}")
        await store.insert_inbox(
            conn,
            {
                "delivery_id": delivery_id,
                "recipient": recipient,
                "package_id": package_id,
                "state": InboxState.READY,
                "attempt": max(attempt, 1),
                "queued_at": batch.now,
                "expires_at": datetime.fromtimestamp(expires_at, UTC),
            },
        )
        self.placed(batch, [recipient])

    async def page(
        self, unit: str, *, after: int = 0, limit: int = 50, wait: float = 0.0
    ) -> InboxPage:
        """The unit's waiting copies after position ``after``, oldest first. ``wait``: if
        there are none, wait up to that many seconds for the first to arrive (an empty page if
        none does, or at once when the gateway stops)."""
        if wait <= 0:
            return await self._page(unit, after, limit)
        deadline = asyncio.get_running_loop().time() + wait
        with self.wakeups.watch(_topic(unit)) as watch:
            while True:
                page = await self._page(unit, after, limit)
                left = deadline - asyncio.get_running_loop().time()
                if page.entries or left <= 0 or self.wakeups.closed:
                    return page
                await watch.wait(min(left, self.wakeups.recheck))

    async def packages(self, entries: Sequence[InboxEntry]) -> list[bytes | None]:
        """The package bytes of a listed page's copies, in its order, for a listing that
        carries them: read together with the fetches of the moment. None for a copy to fetch
        on its own: its package is over LISTED_PACKAGE or kept in the package store, or the
        page's packages would pass LISTED_PAGE with it."""
        room = LISTED_PAGE
        wanted: list[str] = []
        for entry in entries:
            if entry.size <= min(LISTED_PACKAGE, room):
                room -= entry.size
                wanted.append(entry.delivery_id)
        read = await asyncio.gather(*map(self._items.get, wanted))
        found = dict(zip(wanted, read, strict=True))
        return [
            None if (item := found.get(e.delivery_id)) is None or item.raw_claim else item.raw
            for e in entries
        ]

    async def _page(self, unit: str, after: int, limit: int) -> InboxPage:
        async with self._reader.connect() as conn:
            return await store.inbox_page(conn, unit, after, limit)

    @staticmethod
    def _check_access(principal: Principal, recipient: str | None, delivery_id: str) -> None:
        """The copy exists (``recipient`` is its recipient) and the principal may touch it: a
        unit only its own (another unit's copy is as unknown to it as a missing one, so that
        delivery ids cannot be probed), an operator any, an auditor none."""
        if principal.role is Role.AUDITOR:
            raise GatewayError("forbidden", "auditors read the ledger, not the inboxes")
        if recipient is None or not principal.may_read_inbox(recipient):
            raise GatewayError("not_found", f"no inbox item {delivery_id}")

    async def item(self, principal: Principal, delivery_id: str) -> FetchedCopy:
        """A copy the principal may read, with its package's bytes: read together with the
        copies other requests fetch at the same moment (gateway.db.together)."""
        item = await self._items.get(delivery_id)
        self._check_access(principal, item.recipient if item else None, delivery_id)
        assert item is not None
        body = await self.bodies.get(item.raw_claim) if item.raw_claim else item.raw
        return FetchedCopy(
            delivery_id, item.recipient, item.document_key, item.signature_state, item.sha256, body
        )

    async def ack(
        self,
        principal: Principal,
        delivery_id: str,
        done: bool,
        reason: str | None,
        received: Received | None = None,
    ) -> str:
        """The unit's answer for a copy: done delivers it (``received`` says how it was
        acknowledged: checked by the caller, see gateway.service.evidence); fail offers it
        again, up to the bus's attempt limit, then leaves it dead for an operator. Returns the
        transport state."""
        check_acknowledger(principal)
        ack = received or Received()
        return await self.writer.run(
            lambda batch: self._ack(batch, principal, delivery_id, done, reason, ack),
            independent=True,
            reads=(store.inbox_copies, delivery_id),
        )

    async def _ack(
        self,
        batch: Batch,
        principal: Principal,
        delivery_id: str,
        done: bool,
        reason: str | None,
        received: Received,
    ) -> str:
        await batch.fresh(delivery_id)  # acknowledged a moment ago, in this batch?
        found: store.InboxCopy | None = await batch.look_up(store.inbox_copies, delivery_id)
        self._check_access(principal, found.copy.recipient if found else None, delivery_id)
        assert found is not None
        copy = found.copy
        if found.state is not InboxState.READY:
            return copy.transport.value  # answered before: the same answer again
        details: dict[str, Any] = {"via": "inbox", "attempt": found.tries}
        if not done:
            details["reason"] = (reason or "no reason given")[:1000]
        else:
            details |= await bind_ack(batch.conn, received, copy, batch.now)
        answer = inbox_answer(done, found.tries, self.policy)
        await store.update_inbox(
            batch,
            delivery_id,
            {
                "state": answer.state,
                "attempt": answer.attempt,
                "reason": None if done else details["reason"],
            },
        )
        await move(
            batch,
            copy,
            answer.transport,
            answer.event,
            found.tries,
            details,
            reason=None if done else details["reason"],
        )
        return answer.transport.value

    async def expire(self) -> int:
        """Copies that waited in an inbox past their time-to-live expire (the sender sees it)."""
        return await self.writer.run(self._expire)

    async def _expire(self, batch: Batch) -> int:
        items = await store.overdue_inbox_copies(batch.conn, batch.now)
        reason = "not fetched before its time-to-live"
        for item in items:
            await store.update_inbox(batch, item.copy.delivery_id, {"state": InboxState.EXPIRED})
            await move(
                batch,
                item.copy,
                Transport.EXPIRED,
                EventType.EXPIRED,
                item.tries,
                {"via": "inbox", "reason": reason},
                reason=reason,
            )
        return len(items)

    async def redrive(self, unit: str, ids: Sequence[str] | None) -> int:
        """Put the unit's dead or expired inbox copies back with a fresh time-to-live."""
        return await self.writer.run(lambda batch: self._redrive(batch, unit, ids))

    async def _redrive(self, batch: Batch, unit: str, ids: Sequence[str] | None) -> int:
        ttl = timedelta(milliseconds=self.policy.normal.ttl_ms)
        now = batch.now
        items = await store.stopped_inbox_copies(batch.conn, unit, ids)
        for item in items:
            await store.update_inbox(
                batch,
                item.copy.delivery_id,
                {
                    "state": InboxState.READY,
                    "attempt": 1,
                    "expires_at": now + ttl,
                    "queued_at": now,
                },
            )
            await move(batch, item.copy, Transport.QUEUED, EventType.REDRIVEN, 1, {"via": "inbox"})
        if items:
            self.placed(batch, [unit])
        return len(items)


def _topic(unit: str) -> str:
    return f"inbox/{unit}"
