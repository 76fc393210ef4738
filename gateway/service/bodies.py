"""The body of a copy that reached an AMQP unit's own queue as a claim: a package over the
bus's claim-check size travels as ``gw-claim`` with an empty body, and the unit, which cannot
read the gateway's files, fetches the bytes over HTTP, with its own token, while the copy is
live.

Live means the copy's transport state is ``accepted``, ``queued`` or ``retrying`` and its
time-to-live has not passed: counted, like the message's ``gw-expires-at``, from when the copy
was queued (or redriven), or the inbox row's expiry when the embedded bus serves the unit by
the pull inbox. Nothing else marks a unit's own copy expired (no gateway consumer reads that
queue), so the clock is checked here. A delivered copy (the unit's first status packet says it
arrived), an expired or a dead one is ``410 delivery_closed`` until an operator redrives it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.bus import ClaimStore, RetryPolicy
from gateway.db.engine import reader
from gateway.directory import DeliveryMode
from gateway.errors import GatewayError
from gateway.service import store
from gateway.service.inbox import FetchedCopy
from gateway.service.store import CopyBody
from gateway.service.tokens import Principal, Role
from gateway.service.transport import LIVE, Transport


class ClaimedBodies:
    """Serves the bytes of AMQP units' copies to their recipients."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetryPolicy,
        bodies: ClaimStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._reader = reader(engine)
        self.policy = policy
        self.bodies = bodies
        self.clock = clock

    def expires_at(self, copy: CopyBody) -> datetime | None:
        """When the live copy stops being live; None while it has not reached the bus."""
        if copy.inbox_expires_at is not None:
            return copy.inbox_expires_at
        if copy.transport == Transport.ACCEPTED:
            return None
        queued = copy.transport_at.timestamp()
        return datetime.fromtimestamp(self.policy.expires_at(copy.priority, queued), UTC)

    async def body(self, principal: Principal, delivery_id: str) -> FetchedCopy:
        """The copy's package bytes, for the recipient unit's token only: another unit's copy
        is as unknown as a missing one (404), operators and auditors are refused (403), and a
        copy that is over is 410."""
        if principal.role is not Role.UNIT:
            raise GatewayError("forbidden", "only the recipient unit fetches its copy's body")
        async with self._reader.connect() as conn:
            copy = await store.copy_body(conn, delivery_id)
        if copy is None or copy.item.recipient != principal.unit or copy.mode != DeliveryMode.AMQP:
            raise GatewayError("not_found", f"no copy {delivery_id} for an AMQP unit of yours")
        transport = Transport(copy.transport)
        if transport not in LIVE:
            raise GatewayError(
                "delivery_closed",
                f"{delivery_id} is {transport} since {copy.transport_at.isoformat()}",
            )
        expires = self.expires_at(copy)
        if expires is not None and self.clock() >= expires:
            raise GatewayError("delivery_closed", f"{delivery_id} expired at {expires.isoformat()}")
        item = copy.item
        body = await self.bodies.get(item.raw_claim) if item.raw_claim else item.raw
        return FetchedCopy(
            delivery_id, item.recipient, item.document_key, item.signature_state, item.sha256, body
        )
