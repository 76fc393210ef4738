"""The service's own tables, beside the ledger's in the same database and migration chain.

Unlike the ledger these hold current state and change in place: what was submitted (with the
bytes exactly as signed), each (document, recipient) delivery and its transport state, each
recipient's business status, the pull inboxes, the outbox of copies still to publish, the
access tokens, and the gateway processes running. The ledger is the history and the proof;
these are the working copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.engine import Base, UtcDateTime


class PackageRow(Base):
    """A package or status packet as accepted, and the answer given for it."""

    __tablename__ = "gw_package"

    package_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # document | status
    sender: Mapped[str] = mapped_column(String(64), nullable=False)
    document_id: Mapped[str] = mapped_column(String(255), nullable=False)
    document_key: Mapped[str] = mapped_column(String(300), nullable=False)  # the document
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[str | None] = mapped_column(String(2))
    subject: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    signature_state: Mapped[str] = mapped_column(String(16), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # empty when claimed
    # A large package (a scan) is kept as a file of the package store instead: its reference.
    raw_claim: Mapped[str | None] = mapped_column(String(80))
    answer: Mapped[str] = mapped_column(Text, nullable=False)  # JSON of the 202 answer
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    ledger_seq: Mapped[int] = mapped_column(Integer, nullable=False)

    # DocumentId for documents, NULL for status packets: one document per (sender, DocumentId),
    # while a sender may send many status packets about one document.
    document_identity: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint("sender", "document_identity"),
        UniqueConstraint("sender", "sha256"),
        Index(None, "document_key"),
    )


class DeliveryRow(Base):
    """One copy of one package for one recipient, and where it is."""

    __tablename__ = "gw_delivery"

    delivery_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    package_id: Mapped[str] = mapped_column(String(40), nullable=False)
    document_key: Mapped[str] = mapped_column(String(300), nullable=False)
    sender: Mapped[str] = mapped_column(String(64), nullable=False)  # of the package
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    # pull | push | amqp, or link:<name> for a unit behind an upstream link
    mode: Mapped[str] = mapped_column(String(48), nullable=False)
    transport: Mapped[str] = mapped_column(String(16), nullable=False)
    transport_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_outcome: Mapped[str | None] = mapped_column(String(16))  # the last bus transition
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (
        Index(None, "package_id"),
        Index(None, "document_key", "recipient"),
        Index(None, "published"),
        # The backlog: copies not yet delivered, by state and unit, oldest first.
        Index(None, "transport", "recipient", "transport_at"),
    )


class RecipientStateRow(Base):
    """Per (document, recipient): the business status and the recall conversation."""

    __tablename__ = "gw_recipient_state"

    document_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64), primary_key=True)
    business: Mapped[str | None] = mapped_column(String(2))
    recall_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    recall_answer: Mapped[str | None] = mapped_column(String(2))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class InboxRow(Base):
    """A copy waiting in a pull unit's inbox until the unit acknowledges it."""

    __tablename__ = "gw_inbox"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(48), nullable=False, unique=True)
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    package_id: Mapped[str] = mapped_column(String(40), nullable=False)
    state: Mapped[str] = mapped_column(String(8), nullable=False)  # ready | done | dead | expired
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "recipient", "state", "position"),)


class TokenRow(Base):
    """An access token, stored as the SHA-256 of the secret."""

    __tablename__ = "gw_token"

    token_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    unit: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class VxpSystemRow(Base):
    """A system connected through the national-axis façade: its unit (the systemId) and its
    shared secret, encrypted with the gateway's façade key (the HMAC needs the secret itself,
    so a digest would not do). One secret per system; issuing again replaces it."""

    __tablename__ = "gw_vxp_system"

    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class VxpSeenRow(Base):
    """A signed façade request already answered, kept while its timestamp is inside the
    clock-skew window: the same (system, timestamp, signature) again is a replay. In the
    database, so that every worker process sees every other's."""

    __tablename__ = "gw_vxp_seen"

    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stamp: Mapped[str] = mapped_column(String(32), primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)

    __table_args__ = (Index(None, "seen_at"),)


class ProcessRow(Base):
    """A running gateway process, seen alive at ``seen_at`` (a heartbeat every few seconds):
    commands that would change deliveries behind a running gateway's back look here first."""

    __tablename__ = "gw_process"

    process_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class WebhookKeyRow(Base):
    """A generation of a push unit's webhook secret (the secret itself is derived from the
    gateway's webhook master key, never stored): the newest signs, the one before it too
    until its overlap after a rotation has passed."""

    __tablename__ = "gw_webhook_key"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class RemoteUnitRow(Base):
    """A unit behind an upstream link, as the link's directory (getAgenciesList) listed it at
    its last synchronisation; ``version`` counts the link's synchronisations."""

    __tablename__ = "gw_remote_unit"

    link: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    parent_code: Mapped[str | None] = mapped_column(String(64))
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)

    __table_args__ = (Index(None, "code"),)


class AckRow(Base):
    """A recipient's signed statement of reception of a copy (the compact JWS, verified when
    it arrived). The copy's ``delivered`` ledger entry names its SHA-256."""

    __tablename__ = "gw_ack"

    delivery_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    document_key: Mapped[str] = mapped_column(String(300), nullable=False)
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    statement: Mapped[str] = mapped_column(Text, nullable=False)  # the compact JWS
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)  # of the JWS
    acknowledged_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)

    __table_args__ = (Index(None, "document_key"),)


class NoticeRow(Base):
    """A transport notice for a sender: one of its copies expired, was dead-lettered or was
    redriven. Made with that ledger event, in the same transaction; ``delivered_at`` is set
    when the sender has it (its webhook answered 2xx, the broker confirmed it on the sender's
    own AMQP queue, or the sender acknowledged it), which is ledgered as ``notified``."""

    __tablename__ = "gw_notice"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(48), nullable=False, unique=True)
    unit: Mapped[str] = mapped_column(String(64), nullable=False)  # the sender told
    event: Mapped[str] = mapped_column(String(16), nullable=False)  # expired | dead_lettered…
    delivery_id: Mapped[str] = mapped_column(String(48), nullable=False)
    document_key: Mapped[str] = mapped_column(String(300), nullable=False)
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index(None, "unit", "delivered_at", "position"),)


package_table = cast(Table, PackageRow.__table__)
delivery_table = cast(Table, DeliveryRow.__table__)
recipient_state_table = cast(Table, RecipientStateRow.__table__)
inbox_table = cast(Table, InboxRow.__table__)
token_table = cast(Table, TokenRow.__table__)
process_table = cast(Table, ProcessRow.__table__)
webhook_key_table = cast(Table, WebhookKeyRow.__table__)
vxp_system_table = cast(Table, VxpSystemRow.__table__)
vxp_seen_table = cast(Table, VxpSeenRow.__table__)
remote_unit_table = cast(Table, RemoteUnitRow.__table__)
ack_table = cast(Table, AckRow.__table__)
notice_table = cast(Table, NoticeRow.__table__)
