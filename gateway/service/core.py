"""The gateway at work: accept a package (verify, check the workflow, ledger and outbox in one
transaction, publish), follow every copy through the bus into the ledger, and serve the pull
inboxes. The HTTP layer (gateway.api) and the delivery workers call into this one object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.upstream.links import Link, Links
from gateway.bus import Bus, ClaimStore, Delivery, RetryPolicy
from gateway.config import EnvelopeSettings, Settings
from gateway.db.wakeups import Wakeups
from gateway.directory import Directory
from gateway.envelope import BusinessType, Kind, Package, Profile
from gateway.errors import GatewayError, PackageRejected
from gateway.ledger import Event, EventType, SqlLedger
from gateway.service import store
from gateway.service.bodies import ClaimedBodies
from gateway.service.evidence import Received, bind_ack, received
from gateway.service.inbox import InboxAck, Inboxes, check_acknowledger
from gateway.service.moves import move
from gateway.service.notices import Notices
from gateway.service.routing import Rejected, bus_delivery, remote_sender, route
from gateway.service.tokens import Principal, Role
from gateway.service.transport import Transport, transport_allows
from gateway.service.writer import Batch, Writer
from gateway.trust import TrustStore, VerifiedPackage, verify_package
from gateway.workflow import DocumentState, apply_status, check_status

log = logging.getLogger(__name__)


# Packages up to this size are verified on the event loop (about a millisecond at 64 KiB):
# handing them to a thread costs more than it saves. Larger ones go to a worker thread so
# that they do not hold up other requests.
INLINE_VERIFY_BYTES = 64 * 1024


def body_sha256(data: bytes | BinaryIO) -> str:
    """The SHA-256 of a body held in memory or spooled to a file (read from its start, and
    left at its start for whoever reads it next)."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    data.seek(0)
    digest = hashlib.sha256()
    while chunk := data.read(1024 * 1024):
        digest.update(chunk)
    data.seek(0)
    return digest.hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _verify_and_read(
    data: bytes | BinaryIO,
    trust: TrustStore,
    directory: Directory,
    profile: Profile,
    now: datetime,
    limits: EnvelopeSettings,
) -> VerifiedPackage:
    """verify_package with the model read in full, so that a large package's reading is done
    in the worker thread rather than on the event loop when submit first uses a field."""
    verified = verify_package(data, trust, directory, profile, now, limits=limits)
    verified.package  # noqa: B018  # read the model now, here
    return verified


def _known_key(package: Package) -> store.KnownKey:
    """What a submission looks for among the sender's earlier packages: the same bytes, its
    DocumentId, and the one a revoke, update or replace names."""
    business = package.business
    changes = business is not None and business.doc_type is not BusinessType.NEW
    named = (business.document_id,) if business is not None and changes else ()
    return (package.sender.organ_id, package.sha256, (package.document_id, *named))


@dataclass(frozen=True)
class Submission:
    status: int  # 202 first time, 200 the same package again
    answer: dict[str, Any]


class Gateway:
    """One gateway process's view of the system; safe to share between request handlers."""

    def __init__(
        self,
        *,
        settings: Settings,
        directory: Directory,
        trust: TrustStore,
        ledger: SqlLedger,
        writer: Writer,
        wakeups: Wakeups,
        bus: Bus,
        inbox_modes: frozenset[str],
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        links: Links | None = None,
    ) -> None:
        """``inbox_modes``: the delivery modes whose copies wait in a pull inbox (pull units,
        and amqp units when the bus is the embedded one, which they cannot reach);
        ``links``: the upstream links, which serve the units outside the directory."""
        self.settings = settings
        self.directory = directory
        self.trust = trust
        self.ledger = ledger
        self.engine = ledger.engine
        self.clock = clock
        self.policy = policy or RetryPolicy.from_settings(settings.bus)
        self.writer = writer
        # Packages over the claim-check size live as files, not in the database row; their
        # own store, which nothing prunes (the bus's claims may be pruned once delivered).
        self.bodies = ClaimStore(settings.home / "packages")
        self.bus = bus
        self.inboxes = Inboxes(self.writer, ledger.engine, self.policy, self.bodies, wakeups)
        self.claimed = ClaimedBodies(ledger.engine, self.policy, self.bodies, clock)
        self.notices = Notices(self.writer, ledger.engine)
        self._outbox: list[Delivery] = []  # committed copies for the bus, not yet handed over
        self._publisher: asyncio.Task[None] | None = None
        self.inbox_modes = inbox_modes
        self.links = links or Links()

    # -- submission ------------------------------------------------------------------------

    async def submit(
        self,
        data: bytes | BinaryIO,
        principal: Principal,
        profile: Profile,
        expect: Callable[[Package], None] | None = None,
        *,
        origin: Link | None = None,
        claimed: Sequence[str] = (),
        acknowledgement: str | None = None,
    ) -> Submission:
        """Accept a package or status packet from ``principal``, or raise with a code. ``data``
        may be an open file holding it (a large body spooled to disk). ``expect``, once the
        package is verified and before anything is stored, may refuse it for not being what
        the request said it was (the national-axis façade's headers). ``acknowledgement`` is
        the signed statement of reception an AMQP unit sends with its first status packet.

        ``origin``: the package arrived from this upstream link (``principal`` is the link),
        judged in the link's profile. Its sender must be behind the link; it is delivered to
        the recipients of our directory only (never relayed to another link), and ``claimed``,
        the recipients the link said it is for, must all be ours."""
        if origin is not None:
            return await self._relayed_in(data, principal, origin, expect, claimed)
        if principal.role is Role.AUDITOR:
            raise GatewayError("forbidden", "auditors read; they do not submit")
        if profile is Profile.COMPAT and principal.role is not Role.OPERATOR:
            raise GatewayError("forbidden", "only operators relay packets in the compat profile")
        if profile is Profile.STRICT and principal.role is Role.OPERATOR:
            raise GatewayError(
                "forbidden",
                "operators relay packets in the compat profile; a strict package comes with "
                "its sender unit's own token",
            )
        verified = await self._verify(data, principal.unit, self.directory, profile)
        package = verified.package
        if principal.role is Role.UNIT and package.sender.organ_id != principal.unit:
            raise GatewayError(
                "forbidden",
                f"this token speaks for {principal.unit}, the package is from "
                f"{package.sender.organ_id}",
            )
        return await self._accept(data, verified, expect, None, acknowledgement)

    async def _relayed_in(
        self,
        data: bytes | BinaryIO,
        principal: Principal,
        origin: Link,
        expect: Callable[[Package], None] | None,
        claimed: Sequence[str],
    ) -> Submission:
        directory = self.directory.with_guests(remote_sender(origin))
        verified = await self._verify(data, principal.unit, directory, origin.profile)
        sender = verified.package.sender.organ_id
        if sender in self.directory or not origin.serves_code(sender):
            raise GatewayError(
                "forbidden",
                f"link {origin.name} does not serve {sender}: it may relay only for the units "
                "behind it",
            )
        ours = [c for c in claimed if c not in self.directory]
        if ours:
            raise Rejected(
                "unknown_recipient",
                f"not in the unit directory: {', '.join(ours)}; nothing was queued",
                recipients=ours,
            )
        return await self._accept(data, verified, expect, origin, None)

    async def _verify(
        self, data: bytes | BinaryIO, who: str, directory: Directory, profile: Profile
    ) -> VerifiedPackage:
        args = (data, self.trust, directory, profile, self.clock(), self.settings.envelope)
        try:
            if isinstance(data, bytes) and len(data) <= INLINE_VERIFY_BYTES:
                await self.writer.unlocked()  # not while the process's batch holds the lock
                return _verify_and_read(*args)
            return await asyncio.to_thread(_verify_and_read, *args)
        except PackageRejected as e:
            await self._record_rejection(data, who, None, e)
            raise

    async def _accept(
        self,
        data: bytes | BinaryIO,
        verified: VerifiedPackage,
        expect: Callable[[Package], None] | None,
        origin: Link | None,
        acknowledgement: str | None,
    ) -> Submission:
        package = verified.package
        if expect is not None:
            expect(package)
        ack = None
        if acknowledgement is not None:
            if package.kind is not Kind.STATUS:
                raise GatewayError("bad_request", "an acknowledgement comes with a status packet")
            ack = received(
                self.settings.ledger,
                self.trust,
                self.directory,
                self.clock(),
                package.sender.organ_id,
                acknowledgement,
            )
        try:
            if package.kind is Kind.STATUS:
                submission = await self._accept_status(verified, origin, ack)
            else:
                submission = await self._accept_document(verified, origin)
        except PackageRejected as e:
            await self._record_rejection(data, package.sender.organ_id, package, e)
            raise
        return submission

    async def _claim(self, package: Package) -> str | None:
        """Keep a large package's bytes as a file (before the transaction: a refused one
        leaves a file nobody names, content-addressed, which a replay would reuse)."""
        if len(package.raw) <= self.settings.bus.claim_check_bytes:
            return None
        return await self.bodies.put(package.raw)

    async def _accept_document(self, verified: VerifiedPackage, origin: Link | None) -> Submission:
        codes = [r.organ_id for r in verified.package.recipients]
        if origin is not None:  # the link delivers the others; ours are what it brings us
            ours = [c for c in codes if c in self.directory]
            if not ours:
                raise Rejected(
                    "unknown_recipient",
                    f"none of the recipients is in the unit directory ({', '.join(codes)}); "
                    "nothing was queued",
                    recipients=codes,
                )
            codes = ours
        modes = await route(self.directory, self.links, self.engine, codes, origin)
        claim = await self._claim(verified.package)
        return await self.writer.run(
            lambda batch: self._store_document(batch, verified, modes, claim, origin),
            independent=True,  # a twin in the same batch fails its unique constraints
            reads=(store.known_packages, _known_key(verified.package)),
        )

    async def _store_document(
        self,
        batch: Batch,
        verified: VerifiedPackage,
        modes: dict[str, str],
        claim: str | None,
        origin: Link | None,
    ) -> Submission:
        """The same package again answers as before; else its DocumentId must be new for the
        sender, and a revoke, update or replace must name one the sender sent. One query."""
        package = verified.package
        sender = package.sender.organ_id
        business = package.business
        changes = business is not None and business.doc_type is not BusinessType.NEW
        target = business.document_id if business is not None and changes else None
        known: list[store.Known] = (
            await batch.look_up(store.known_packages, _known_key(package)) or []
        )
        for earlier in known:
            if earlier.sha256 == package.sha256:
                return await self._replayed(batch.conn, earlier.answer)
        for earlier in known:
            if earlier.document_identity == package.document_id:
                raise Rejected(
                    "duplicate_conflict",
                    f"{sender} sent DocumentId {package.document_id} before with other content",
                    package_id=earlier.package_id,
                )
        if changes and not any(earlier.document_identity == target for earlier in known):
            assert business is not None
            raise Rejected(
                "business_target_unknown",
                f"a {business.doc_type.name.lower()} must name a DocumentId that {sender} "
                f"sent before; {target!r} is not one",
            )
        return await self._insert(batch, verified, modes, EventType.SUBMITTED, claim, origin)

    async def _accept_status(
        self, verified: VerifiedPackage, origin: Link | None, ack: Received | None
    ) -> Submission:
        claim = await self._claim(verified.package)
        return await self.writer.run(
            lambda batch: self._store_status(batch, verified, claim, origin, ack)
        )

    async def _store_status(
        self,
        batch: Batch,
        verified: VerifiedPackage,
        claim: str | None,
        origin: Link | None,
        ack: Received | None,
    ) -> Submission:
        package = verified.package
        assert package.status is not None
        conn = batch.conn
        responder = package.sender.organ_id
        code = package.status.code
        replay = await self._replay(conn, responder, package.sha256)
        if replay is not None:
            return replay
        document = await self._document_state(conn, package.document_key)
        if document is None:
            raise PackageRejected(
                "status_not_recipient",
                f"no document {package.document_key} was sent through this gateway",
            )
        step = check_status(document, responder, code)
        modes = await route(self.directory, self.links, self.engine, step.route_to, origin, conn)
        submission = await self._insert(batch, verified, modes, EventType.STATUS, claim, origin)
        apply_status(document, step)
        await self._save_states(batch, package.document_key, document, step.recipients)
        if code not in ("13",) and verified.valid:
            # only a status the responder signed proves that its copy arrived
            await self._implicit_delivery(batch, package.document_key, responder, ack)
        return submission

    async def _replay(self, conn: AsyncConnection, sender: str, sha256: str) -> Submission | None:
        answer = await store.answer_for(conn, sender, sha256)
        return None if answer is None else await self._replayed(conn, answer)

    async def _replayed(self, conn: AsyncConnection, answer: str) -> Submission:
        return Submission(200, await self._fresh_answer(json.loads(answer), conn))

    async def _insert(
        self,
        batch: Batch,
        verified: VerifiedPackage,
        modes: dict[str, str],
        event_type: EventType,
        claim: str | None,
        origin: Link | None = None,
    ) -> Submission:
        """Ledger the package and store it with its copies (its bytes in the row, or named by
        ``claim`` when they are in the package store). Copies for an inbox are placed in
        it now (queued, in the same transaction); the others are the outbox, published to the
        bus once the batch has committed. A package from a link names it in its event."""
        package = verified.package
        now = batch.now
        package_id = "p-" + secrets.token_hex(12)
        sender = package.sender.organ_id
        status = package.status.code if package.status else None
        deliveries = {code: f"d-{package_id[2:]}-{i}" for i, code in enumerate(modes)}
        inboxed = [code for code, mode in modes.items() if mode in self.inbox_modes]
        codes = list(modes)
        details = {
            "package_id": package_id,
            "kind": package.kind.value,
            "signature_state": str(verified.signature_state),
            # The list itself is in each copy's own events; here only its size and digest,
            # so that a letter to every unit fits in one entry.
            "recipient_count": len(codes),
            "recipients_sha256": hashlib.sha256("\n".join(codes).encode()).hexdigest(),
        }
        if origin is not None:
            details["link"] = origin.name
        about = {
            "document": package.document_key,
            "sender": sender,
            "package_sha256": package.sha256,
        }
        if event_type is EventType.STATUS:
            events = [
                Event(EventType.STATUS, recipient=code, code=status, details=details, **about)
                for code in codes
            ]
        else:
            events = [Event(EventType.SUBMITTED, details=details, **about)]
        events += [
            Event(
                EventType.QUEUED,
                document=package.document_key,
                sender=sender,
                recipient=code,
                details={"delivery_id": deliveries[code], "attempt": 1, "via": "inbox"},
            )
            for code in inboxed
        ]
        seqs = batch.append(events)
        state = {code: Transport.ACCEPTED for code in codes} | {
            code: Transport.QUEUED for code in inboxed
        }
        answer: dict[str, Any] = {
            "package_id": package_id,
            "kind": package.kind.value,
            "document_key": package.document_key,
            "recipients": [
                {"code": code, "state": state[code].value, "delivery_id": deliveries[code]}
                for code in codes
            ],
            "ledger_seq": seqs[0],
            "signature_state": str(verified.signature_state),
        }
        if status:
            answer["status"] = status
        await store.insert_submission(
            batch,
            {
                "package_id": package_id,
                "kind": package.kind.value,
                "sender": sender,
                "document_id": package.document_id,
                "document_identity": (
                    package.document_id if package.kind is Kind.DOCUMENT else None
                ),
                "document_key": package.document_key,
                "sha256": package.sha256,
                "status_code": status,
                "subject": package.subject,
                "priority": package.priority,
                "signature_state": str(verified.signature_state),
                "size": len(package.raw),
                "raw": b"" if claim else package.raw,
                "raw_claim": claim,
                "answer": json.dumps(answer),
                "submitted_at": now,
                "ledger_seq": seqs[0],
            },
            [
                {
                    "delivery_id": deliveries[code],
                    "package_id": package_id,
                    "document_key": package.document_key,
                    "sender": sender,
                    "recipient": code,
                    "mode": mode,
                    "transport": state[code].value,
                    "transport_at": now,
                    "attempt": 1 if code in inboxed else 0,
                    "published": code in inboxed,
                }
                for code, mode in modes.items()
            ],
            [
                self.inboxes.row(deliveries[c], c, package_id, package.priority, now)
                for c in inboxed
            ],
            [
                {"document_key": package.document_key, "recipient": code, "updated_at": now}
                for code in codes
            ]
            if package.kind is Kind.DOCUMENT
            else [],
        )
        outbox = [
            bus_delivery(
                deliveries[c], package.document_key, c, modes[c], package.raw, package.priority
            )
            for c in codes
            if c not in inboxed
        ]
        if outbox:
            batch.after_commit.append(lambda: self._publish_later(outbox))
        self.inboxes.placed(batch, inboxed)
        return Submission(202, answer)

    async def _fresh_answer(self, answer: dict[str, Any], conn: AsyncConnection) -> dict[str, Any]:
        """The stored answer with each recipient's current transport state."""
        states = await store.transport_states(conn, answer["package_id"])
        answer = dict(answer)
        answer["recipients"] = [
            {**r, "state": states.get(r["code"], r["state"])} for r in answer["recipients"]
        ]
        return answer

    async def _record_rejection(
        self, data: bytes | BinaryIO, sender: str, package: Package | None, error: PackageRejected
    ) -> None:
        details: dict[str, Any] = {"message": error.message[:500]}
        if error.where:
            details["where"] = error.where[:300]
        event = Event(
            EventType.REJECTED,
            document=package.document_key[:300] if package else None,
            sender=sender,
            package_sha256=body_sha256(data),
            code=error.code,
            details=details,
        )
        try:
            await self.writer.record([event])
        except Exception:  # the refusal stands even if it cannot be ledgered
            log.exception("could not ledger the rejection of a package from %s", sender)

    # -- workflow state --------------------------------------------------------------------

    async def _document_state(self, conn: AsyncConnection, key: str) -> DocumentState | None:
        sender = await store.document_sender(conn, key)
        if sender is None:
            return None
        return DocumentState(sender, await store.recipient_states(conn, key))

    async def _save_states(
        self, batch: Batch, key: str, document: DocumentState, recipients: Sequence[str]
    ) -> None:
        for code in recipients:
            await store.save_recipient_state(
                batch.conn, key, code, document.recipients[code], batch.now
            )

    async def _implicit_delivery(
        self, batch: Batch, key: str, recipient: str, ack: Received | None
    ) -> None:
        """A unit served over its own AMQP consumer is heard from only by its statuses: the
        first one proves the copy arrived, and may carry its signed acknowledgement."""
        copy = await store.amqp_copy(batch.conn, key, recipient)
        if copy is None or not transport_allows(copy.transport, Transport.DELIVERED):
            return
        if ack is None:  # the policy decides whether this unit may go without one
            ack = received(
                self.settings.ledger, self.trust, self.directory, batch.now, recipient, None
            )
        details = await bind_ack(batch.conn, ack, copy, batch.now)
        await move(
            batch,
            copy,
            Transport.DELIVERED,
            EventType.DELIVERED,
            copy.attempt,
            {"via": "status", **details},
        )

    # -- the bus -----------------------------------------------------------------------------

    def _publish_later(self, deliveries: list[Delivery]) -> None:
        """Hand committed copies to the publisher task (started when there is work)."""
        self._outbox.extend(deliveries)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_outbox(), name="gateway-outbox")

    async def _publish_outbox(self) -> None:
        while self._outbox:
            taken, self._outbox = self._outbox, []
            await self._hand_to_bus(taken)

    async def _hand_to_bus(self, deliveries: list[Delivery]) -> int:
        """Publish copies; on failure they stay unpublished and the relay tries again."""
        if not deliveries:
            return 0
        try:
            await self.bus.publish_many(deliveries)
        except Exception:
            log.warning(
                "publishing %d copies failed; the relay will retry", len(deliveries), exc_info=True
            )
            return 0
        return len(deliveries)

    async def drain(self) -> None:
        """Wait for the writer and the publisher to finish what they hold (shutdown)."""
        await self.writer.drain()
        if self._publisher is not None:
            await asyncio.gather(self._publisher, return_exceptions=True)

    async def publish_pending(self, older_than: float = 30.0) -> int:
        """The relay: publish copies left unpublished (the bus was down, the process died)."""
        cutoff = self.clock() - timedelta(seconds=older_than)
        async with self.engine.connect() as conn:
            copies = await store.unpublished(conn, cutoff)
        return await self._hand_to_bus(
            [
                bus_delivery(
                    c.delivery_id,
                    c.document_key,
                    c.recipient,
                    c.mode,
                    await self.bodies.get(c.raw_claim) if c.raw_claim else c.raw,
                    c.priority,
                )
                for c in copies
            ]
        )

    async def acknowledge(
        self,
        principal: Principal,
        delivery_id: str,
        done: bool,
        reason: str | None,
        statement: str | None = None,
    ) -> str:
        """A pull unit's answer for a copy in its inbox; a ``done`` is checked against the
        signed-acknowledgement policy and, when signed, against the trust store (CPU work
        outside the writer). Returns the transport state."""
        ack = None
        if done and principal.role is Role.UNIT:
            ack = received(
                self.settings.ledger,
                self.trust,
                self.directory,
                self.clock(),
                principal.unit,
                statement,
            )
        return await self.inboxes.ack(principal, delivery_id, done, reason, ack)

    async def acknowledge_all(
        self, principal: Principal, acks: Sequence[InboxAck]
    ) -> list[str | GatewayError]:
        """A pull unit's answers for several copies at once, each as ``acknowledge`` would
        take it alone: the transport state, or the refusal of that one answer. They are
        handed to the writer together, so they share its transactions."""
        check_acknowledger(principal)

        async def one(ack: InboxAck) -> str | GatewayError:
            try:
                return await self.acknowledge(
                    principal, ack.delivery_id, ack.done, ack.reason, ack.statement
                )
            except GatewayError as e:
                return e

        return list(await asyncio.gather(*(one(ack) for ack in acks)))

    async def redrive(self, unit: str, ids: Sequence[str] | None) -> int:
        """Put a unit's dead or expired copies back: the bus's, and its inbox's."""
        count = await self.bus.redrive(unit, ids)
        return count + await self.inboxes.redrive(unit, ids)
