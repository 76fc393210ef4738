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
from gateway.service.transport import Transport

_d = delivery_table.c
_p = package_table.c


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    """What a search for documents asks (None: any). ``text`` is found in the DocumentId or
    the subject, regardless of case (every letter's on PostgreSQL with a UTF-8 locale,
    ASCII letters' on SQLite); ``recipient`` is one it was addressed to; ``state`` (a
    transport state) is that of any one of its copies (of the copy to ``recipient``, when
    given)."""

    text: str | None = None
    sender: str | None = None
    recipient: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DocumentRow:
    ledger_seq: int  # the entry the search walked: where the next page starts (before)
    document_key: str
    document_id: str
    sender: str
    subject: str | None
    submitted_at: datetime


async def search_documents(
    conn: AsyncConnection, find: DocumentFilter, *, before: int | None, limit: int
) -> list[DocumentRow]:
    """Documents matching ``find``, newest first, by walking ledger entries backwards along
    an index and looking each one's package up (by the document_key index) and its copies
    (by the (document_key, recipient) index): a page reads as many entries as it takes to
    find ``limit`` matches, never the whole table in one go. The entries walked are the
    ``submitted`` ones (along the primary key, or the sender's or the time index), or with
    ``recipient`` that recipient's ``queued`` ones (along the recipient's index: a unit
    receives a small part of all letters, which a walk of every submission would read
    through). ``before``: the ``ledger_seq`` of the last row of the previous page (the entry
    walked)."""
    e = entry_table.c
    walked = EventType.QUEUED if find.recipient else EventType.SUBMITTED
    query = (
        select(e.seq, _p.document_key, _p.document_id, _p.sender, _p.subject, _p.submitted_at)
        .join(package_table, (_p.document_key == e.document) & (_p.kind == DOCUMENT))
        .where(e.type == walked.value)
        .order_by(e.seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(e.seq < before)
    if find.sender:
        query = query.where(e.sender == find.sender)
    if find.recipient:
        # the document's own copy, not a status packet about it queued to the recipient
        query = query.where(e.recipient == find.recipient, e.sender == _p.sender)
    # A date range bounds the walk itself: the ledger's times grow with its sequence
    # numbers, so the first entry of each end (by the time index) says where to start and
    # where to stop, instead of reading every entry newer than the range to reach it.
    if find.since is not None:
        query = query.where(e.time >= find.since)
        first = await _first_entry_at(conn, find.since)
        query = query.where(e.seq >= (first if first is not None else _NO_ENTRY))
    if find.until is not None:
        query = query.where(e.time < find.until)
        after = await _first_entry_at(conn, find.until)
        if after is not None:
            query = query.where(e.seq < after)
    if find.text:
        pattern = "%" + find.text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        query = query.where(
            or_(
                _p.document_id.ilike(pattern + "%", escape="\\"),
                _p.subject.ilike(pattern + "%", escape="\\"),
            )
        )
    if find.state:
        copies = select(_d.document_key).where(_d.transport == find.state)
        if find.recipient:
            copies = copies.where(_d.recipient == find.recipient)
        if find.state == Transport.DELIVERED.value:
            # nearly every copy: the next entries walked match, each checked by its key
            query = query.where(copies.where(_d.document_key == e.document).exists())
        else:
            # the backlog's copies, few however many were delivered: read them first along
            # the (transport, recipient, transport_at) index, then their documents' entries
            query = query.where(e.document.in_(copies))
    return [DocumentRow(*row) for row in await conn.execute(query)]


_NO_ENTRY = 2**62  # past every entry: nothing at or after the time


async def _first_entry_at(conn: AsyncConnection, time: datetime) -> int | None:
    """The first ledger entry at or after ``time`` (by the time index), if any."""
    e = entry_table.c
    query = select(e.seq).where(e.time >= time).order_by(e.time, e.seq).limit(1)
    seq: int | None = await conn.scalar(query)
    return seq


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
