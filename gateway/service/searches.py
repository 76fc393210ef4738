"""The console's searches over the service's tables (and the ledger's, read only): documents
by what an operator or auditor knows of them, and the copies waiting for an operator. Each a
function of a connection returning typed rows, paged, along an index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.entry import EventType
from gateway.ledger.models import entry_table
from gateway.service.models import delivery_table, package_table
from gateway.service.store import DOCUMENT, STOPPED

_d = delivery_table.c
_p = package_table.c


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    """What a search for documents asks (None: any). ``text`` is found in the DocumentId or
    the subject, regardless of case (every letter's on PostgreSQL with a UTF-8 locale,
    ASCII letters' on SQLite); ``recipient`` and ``state`` (a transport state) match any
    one of its copies."""

    text: str | None = None
    sender: str | None = None
    recipient: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DocumentRow:
    ledger_seq: int
    document_key: str
    document_id: str
    sender: str
    subject: str | None
    submitted_at: datetime


async def search_documents(
    conn: AsyncConnection, find: DocumentFilter, *, before: int | None, limit: int
) -> list[DocumentRow]:
    """Documents matching ``find``, newest first, by their ``submitted`` ledger entries (read
    backwards along the ledger's primary key, or its sender or time index) and, for each, its
    package (by the document_key index) and copies (by the (document_key, recipient) index):
    a page reads as many entries as it takes to find ``limit`` matches, never the whole
    table in one go. ``before``: the ledger_seq of the last row of the previous page."""
    e = entry_table.c
    query = (
        select(e.seq, _p.document_key, _p.document_id, _p.sender, _p.subject, _p.submitted_at)
        .join(package_table, (_p.document_key == e.document) & (_p.kind == DOCUMENT))
        .where(e.type == EventType.SUBMITTED.value)
        .order_by(e.seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(e.seq < before)
    if find.sender:
        query = query.where(e.sender == find.sender)
    if find.since is not None:
        query = query.where(e.time >= find.since)
    if find.until is not None:
        query = query.where(e.time < find.until)
    if find.text:
        pattern = "%" + find.text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        query = query.where(
            or_(
                _p.document_id.ilike(pattern + "%", escape="\\"),
                _p.subject.ilike(pattern + "%", escape="\\"),
            )
        )
    copies = select(_d.delivery_id).where(_d.document_key == e.document)
    if find.recipient:
        copies = copies.where(_d.recipient == find.recipient)
    if find.state:
        copies = copies.where(_d.transport == find.state)
    if find.recipient or find.state:
        query = query.where(copies.exists())
    return [DocumentRow(*row) for row in await conn.execute(query)]


@dataclass(frozen=True, slots=True)
class StoppedCopy:
    """A dead or expired copy waiting for an operator, with why it stopped."""

    delivery_id: str
    document_key: str
    recipient: str
    transport: str
    transport_at: datetime
    attempt: int
    reason: str | None


async def stopped_copies(
    conn: AsyncConnection, unit: str | None, *, limit: int
) -> list[StoppedCopy]:
    """Dead and expired copies (of ``unit`` only, when given), the most recent first, by the
    (transport, recipient, transport_at) index."""
    query = (
        select(
            _d.delivery_id,
            _d.document_key,
            _d.recipient,
            _d.transport,
            _d.transport_at,
            _d.attempt,
            _d.reason,
        )
        .where(_d.transport.in_([s.value for s in STOPPED]))
        .order_by(_d.transport_at.desc())
        .limit(limit)
    )
    if unit is not None:
        query = query.where(_d.recipient == unit)
    return [StoppedCopy(*row) for row in await conn.execute(query)]


@dataclass(frozen=True, slots=True)
class PackageBytes:
    """A document's package as accepted: its bytes, or the package store's name for them."""

    raw: bytes
    raw_claim: str | None


async def document_bytes(conn: AsyncConnection, key: str) -> PackageBytes | None:
    query = select(_p.raw, _p.raw_claim).where(_p.document_key == key, _p.kind == DOCUMENT)
    row = (await conn.execute(query)).first()
    return None if row is None else PackageBytes(*row)
