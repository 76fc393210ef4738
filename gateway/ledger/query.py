"""Auditor queries over the ledger: filters, keyset paging by sequence number.

The same :class:`Query` backs ``gateway audit query`` and the HTTP API's entry listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Select, case, func, literal, or_, select

from gateway.ledger.entry import Entry, EventType
from gateway.ledger.models import entry_table

MAX_PAGE = 10_000


@dataclass(frozen=True)
class Query:
    """Entries matching every given filter (None: no filter), in sequence order.

    ``unit`` matches the sender or the recipient; ``since`` is inclusive, ``until`` exclusive.
    """

    document: str | None = None
    unit: str | None = None
    recipient: str | None = None
    events: tuple[EventType, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for t in (self.since, self.until):
            if t is not None and t.tzinfo is None:
                raise ValueError("query times must be timezone-aware")


@dataclass(frozen=True)
class Page:
    entries: list[Entry] = field(default_factory=list)
    next_after: int | None = None  # pass as ``after`` for the next page; None: no more


def select_entries(query: Query, *, after: int | None, limit: int) -> Select[bytes, int]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"page size must be 1..{MAX_PAGE}")
    t = entry_table.c
    stmt = select(t.data, t.seq).order_by(t.seq).limit(limit)
    if after is not None:
        stmt = stmt.where(t.seq > after)
    if query.document is not None:
        stmt = stmt.where(t.document == query.document)
    if query.unit is not None:
        stmt = stmt.where(or_(t.sender == query.unit, t.recipient == query.unit))
    if query.recipient is not None:
        stmt = stmt.where(t.recipient == query.recipient)
    if query.events:
        stmt = stmt.where(t.type.in_([e.value for e in query.events]))
    if query.since is not None:
        stmt = stmt.where(t.time >= query.since)
    if query.until is not None:
        stmt = stmt.where(t.time < query.until)
    return stmt


# What the console's overview counts per minute: documents accepted, copies delivered, refusals.
ACTIVITY = (EventType.SUBMITTED, EventType.DELIVERED, EventType.REJECTED)


@dataclass(frozen=True)
class Activity:
    """How many entries of one type (and code, for refusals) one minute holds."""

    minute: datetime  # UTC, to the minute
    type: EventType
    code: str | None
    count: int


def select_activity(dialect: str, since: datetime) -> Select[str, str, str | None, int]:
    """Counts of ACTIVITY entries per minute, type and code from ``since``, along the time
    index: the database groups, so a page reads one row per minute and type."""
    t = entry_table.c
    if dialect == "sqlite":  # naive UTC text: "YYYY-MM-DD HH:MM:SS…"
        minute = func.substr(t.time, 1, 16)
    else:
        minute = func.to_char(t.time.op("AT TIME ZONE")(literal("UTC")), "YYYY-MM-DD HH24:MI")
    code = case((t.type == EventType.REJECTED.value, t.code), else_=None)
    return (
        select(minute.label("minute"), t.type, code.label("code"), func.count())
        .where(t.time >= since, t.type.in_([e.value for e in ACTIVITY]))
        .group_by(minute, t.type, code)
    )


def parse_minute(text: str) -> datetime:
    return datetime.strptime(text[:16], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
