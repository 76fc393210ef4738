"""The service's SQL, in one place: every query and change of the service's own tables, each
a function of a connection (or, for the writes of the writer's jobs, of its batch) returning
typed rows, so that no caller builds a statement or handles an untyped row. (The ledger keeps
its own; the JSON shapes of answers are the API's.)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    CompoundSelect,
    Row,
    Select,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.service.models import (
    delivery_table,
    inbox_table,
    package_table,
    process_table,
    recipient_state_table,
    token_table,
)
from gateway.service.transport import InboxState, Transport
from gateway.service.writer import Batch
from gateway.workflow import RecipientState

_d = delivery_table.c
_i = inbox_table.c
_p = package_table.c
_r = recipient_state_table.c
_t = token_table.c

Values = Mapping[str, object]  # one row to insert or the columns to change, by column name

DOCUMENT = "document"  # gw_package.kind of a document (the others are status packets)

# The writes a batch may gather from many jobs (one statement object each, see Batch.write).
_INSERT_PACKAGE = insert(package_table)
_INSERT_COPIES = insert(delivery_table)
_INSERT_INBOX = insert(inbox_table)
_INSERT_STATES = insert(recipient_state_table)
_UPDATE_COPY = update(delivery_table).where(_d.delivery_id == bindparam("of_delivery"))
_UPDATE_INBOX = update(inbox_table).where(_i.delivery_id == bindparam("of_delivery"))


# -- copies (deliveries) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a package for one recipient (a delivery) and where it is."""

    delivery_id: str
    package_id: str
    document_key: str
    sender: str  # of the package
    recipient: str
    mode: str  # pull | push | amqp
    transport: Transport
    attempt: int
    last_outcome: str | None

    COLUMNS = (
        _d.delivery_id,
        _d.package_id,
        _d.document_key,
        _d.sender,
        _d.recipient,
        _d.mode,
        _d.transport,
        _d.attempt,
        _d.last_outcome,
    )

    @classmethod
    def of(cls, row: Row[Any]) -> Copy:
        return cls(
            row.delivery_id,
            row.package_id,
            row.document_key,
            row.sender,
            row.recipient,
            row.mode,
            Transport(row.transport),
            row.attempt,
            row.last_outcome,
        )


def _copies(*extra: Any) -> Select[Any]:
    return select(*Copy.COLUMNS, *extra)


_LOAD_COPY = _copies().where(_d.delivery_id == bindparam("delivery_id"))


async def load_copy(conn: AsyncConnection, delivery_id: str) -> Copy | None:
    row = (await conn.execute(_LOAD_COPY, {"delivery_id": delivery_id})).first()
    return None if row is None else Copy.of(row)


async def update_copy(batch: Batch, delivery_id: str, values: Values) -> None:
    await batch.write(_UPDATE_COPY, [{"of_delivery": delivery_id, **values}], keys=[delivery_id])


async def amqp_copy(conn: AsyncConnection, key: str, recipient: str) -> Copy | None:
    """The copy of document ``key`` that ``recipient`` consumes over its own AMQP queue."""
    query = (
        _copies()
        .join(package_table, _p.package_id == _d.package_id)
        .where(
            _d.document_key == key,
            _d.recipient == recipient,
            _d.mode == "amqp",
            _p.kind == DOCUMENT,
        )
    )
    row = (await conn.execute(query)).first()
    return None if row is None else Copy.of(row)


async def transport_states(conn: AsyncConnection, package_id: str) -> dict[str, str]:
    """Each recipient's transport state for one package."""
    query = select(_d.recipient, _d.transport).where(_d.package_id == package_id)
    return {r.recipient: r.transport for r in await conn.execute(query)}


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """Where a copy is, as a document's parties see it."""

    recipient: str
    delivery_id: str
    transport: str
    transport_at: datetime
    reason: str | None


async def copy_progress(conn: AsyncConnection, package_id: str) -> dict[str, CopyProgress]:
    query = select(_d.recipient, _d.delivery_id, _d.transport, _d.transport_at, _d.reason).where(
        _d.package_id == package_id
    )
    return {r.recipient: CopyProgress(*r) for r in await conn.execute(query)}


@dataclass(frozen=True, slots=True)
class Unpublished:
    """A copy for the bus that was committed but not yet published, with its package."""

    delivery_id: str
    document_key: str
    recipient: str
    raw: bytes
    raw_claim: str | None
    priority: int
    mode: str  # where it goes: a unit's mode, or link:<name>


async def unpublished(conn: AsyncConnection, before: datetime) -> list[Unpublished]:
    query = (
        select(
            _d.delivery_id,
            _d.document_key,
            _d.recipient,
            _p.raw,
            _p.raw_claim,
            _p.priority,
            _d.mode,
        )
        .join(package_table, _p.package_id == _d.package_id)
        .where(
            _d.transport_at < before,
            _d.published.is_(False),
            _d.transport == Transport.ACCEPTED.value,
        )
    )
    return [Unpublished(*r) for r in await conn.execute(query)]


@dataclass
class UnitBacklog:
    """A unit's copies not yet delivered: waiting (accepted, queued or retrying), and among
    them retrying; expired and dead ones, which wait for an operator."""

    unit: str
    waiting: int = 0
    oldest_waiting_at: datetime | None = None
    retrying: int = 0
    expired: int = 0
    dead: int = 0


WAITING = (Transport.ACCEPTED, Transport.QUEUED, Transport.RETRYING)
STOPPED = (Transport.EXPIRED, Transport.DEAD)


async def backlogs(conn: AsyncConnection, unit: str | None = None) -> dict[str, UnitBacklog]:
    """Every unit with a copy not delivered (or only ``unit``). Reads only such copies, by
    the (transport, recipient, transport_at) index: cheap while the backlog is small, however
    many copies were delivered."""
    states = [s.value for s in (*WAITING, *STOPPED)]
    query = select(_d.transport, _d.recipient, func.count(), func.min(_d.transport_at)).where(
        _d.transport.in_(states)
    )
    if unit is not None:
        query = query.where(_d.recipient == unit)
    found: dict[str, UnitBacklog] = {}
    for state, code, count, oldest in await conn.execute(
        query.group_by(_d.transport, _d.recipient)
    ):
        b = found.setdefault(code, UnitBacklog(code))
        transport = Transport(state)
        if transport in WAITING:
            b.waiting += count
            if b.oldest_waiting_at is None or oldest < b.oldest_waiting_at:
                b.oldest_waiting_at = oldest
            if transport is Transport.RETRYING:
                b.retrying += count
        elif transport is Transport.EXPIRED:
            b.expired += count
        else:
            b.dead += count
    return found


@dataclass(frozen=True, slots=True)
class LastDelivery:
    """A push unit's last delivered copy, and the last failure among its undelivered ones."""

    delivered_at: datetime | None
    failed_at: datetime | None
    failure: str | None


LAST_BATCH = 100  # units a statement asks about (two branches each of a UNION ALL)


@functools.lru_cache(maxsize=8)
def _last_statement(units: int) -> CompoundSelect[str, str, datetime, str | None]:
    """For ``units`` units (bound as u0, u1, ...), the newest delivered copy and the newest
    failing one of each: two branches per unit, each read along the (transport, recipient,
    transport_at) index. Built once per size: building it cost more than running it."""
    failing = [Transport.RETRYING.value, *(s.value for s in STOPPED)]
    branches = []
    for i in range(units):
        unit = bindparam(f"u{i}", type_=String)
        for kind, states in (("delivered", [Transport.DELIVERED.value]), ("failed", failing)):
            latest = (
                select(_d.recipient, literal(kind).label("kind"), _d.transport_at, _d.reason)
                .where(_d.transport.in_(states), _d.recipient == unit)
                .order_by(_d.transport_at.desc())
                .limit(1)
            )
            branches.append(latest.subquery().select())
    return union_all(*branches)


async def last_deliveries(conn: AsyncConnection, units: Sequence[str]) -> dict[str, LastDelivery]:
    """Each push unit's last delivery and last failure: two look-ups along the (transport,
    recipient, transport_at) index per unit, however many copies it was sent, asked in one
    statement for up to LAST_BATCH units (a statement per look-up cost the units page of
    the sample province, 53 push units, half its time)."""
    found: dict[str, LastDelivery] = {}
    for i in range(0, len(units), LAST_BATCH):
        chosen = units[i : i + LAST_BATCH]
        query = _last_statement(len(chosen))
        rows = await conn.execute(query, {f"u{n}": code for n, code in enumerate(chosen)})
        last = {(unit, kind): (at, reason) for unit, kind, at, reason in rows}
        for unit in chosen:
            delivered, failed = last.get((unit, "delivered")), last.get((unit, "failed"))
            found[unit] = LastDelivery(
                delivered[0] if delivered else None,
                failed[0] if failed else None,
                failed[1] if failed else None,
            )
    return found


# -- packages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """A package the sender sent before with the same bytes or a named DocumentId."""

    package_id: str
    sha256: str
    document_identity: str | None
    answer: str  # JSON of the answer given for it


# What a submission asks: (sender, SHA-256 of the bytes, DocumentIds it names).
KnownKey = tuple[str, str, tuple[str, ...]]

_KNOWN_COLUMNS = (_p.sender, _p.package_id, _p.sha256, _p.document_identity, _p.answer)


def _packages_with(unique: Column[str | None], pairs: str, senders: str | None) -> Select[Any]:
    """The packages whose (sender, ``unique``) is one of the pairs bound to ``pairs``; with
    ``senders``, asked as two lists instead (one of senders, one of ``unique``'s values)."""
    if senders is None:
        return select(*_KNOWN_COLUMNS).where(
            tuple_(_p.sender, unique).in_(bindparam(pairs, expanding=True))
        )
    return select(*_KNOWN_COLUMNS).where(
        _p.sender.in_(bindparam(senders, expanding=True)),
        unique.in_(bindparam(pairs, expanding=True)),
    )


# The packages of several submissions at once, by each unique index in turn (an OR of the two
# made SQLite walk every package), a package found both ways twice. Both databases probe the
# indexes, each asked its own way: PostgreSQL once per pair, given the (sender, value) pairs
# (given a list of senders and one of values, it scanned every package); SQLite per sender
# and value, given the two lists (a list of pairs made it scan), which finds a few rows more
# than asked (another sender's DocumentId, say). Sorted out per submission.
_KNOWN_PACKAGES = {
    "postgresql": union_all(
        _packages_with(_p.sha256, "digests", None),
        _packages_with(_p.document_identity, "identities", None),
    ),
    "sqlite": union_all(
        _packages_with(_p.sha256, "digests", "senders"),
        _packages_with(_p.document_identity, "identities", "senders"),
    ),
}


async def known_packages(
    conn: AsyncConnection, keys: Sequence[KnownKey]
) -> dict[KnownKey, list[Known]]:
    """For each submission's key, the packages its sender sent before with the same bytes or
    one of the DocumentIds it names (one statement for them all; a Lookup of the writer)."""
    digests = sorted({(k[0], k[1]) for k in keys})
    identities = sorted({(k[0], i) for k in keys for i in k[2]})
    if conn.dialect.name == "postgresql":
        values: dict[str, Any] = {"digests": digests, "identities": identities}
    else:
        values = {
            "senders": sorted({k[0] for k in keys}),
            "digests": sorted({d for _, d in digests}),
            "identities": sorted({i for _, i in identities}),
        }
    query = _KNOWN_PACKAGES[conn.dialect.name]
    rows = {r.package_id: r for r in await conn.execute(query, values)}.values()
    return {
        key: [
            Known(r.package_id, r.sha256, r.document_identity, r.answer)
            for r in rows
            if r.sender == key[0] and (r.sha256 == key[1] or r.document_identity in key[2])
        ]
        for key in keys
    }


async def answer_for(conn: AsyncConnection, sender: str, sha256: str) -> str | None:
    """The stored answer for the sender's package with these bytes, if it sent them before."""
    query = select(_p.answer).where(_p.sender == sender, _p.sha256 == sha256)
    answer: str | None = await conn.scalar(query)
    return answer


async def insert_submission(
    batch: Batch,
    package: Values,
    copies: Sequence[Values],
    inbox: Sequence[Values],
    states: Sequence[Values],
) -> None:
    """A package, its copies, the copies placed in inboxes and the recipients' states."""
    await batch.write(_INSERT_PACKAGE, [package])
    await batch.write(_INSERT_COPIES, copies)
    if inbox:
        await batch.write(_INSERT_INBOX, inbox)
    if states:
        await batch.write(_INSERT_STATES, states)


@dataclass(frozen=True, slots=True)
class Document:
    """A document as accepted, as its parties, operators and auditors read it."""

    package_id: str
    sender: str
    document_id: str
    document_key: str
    subject: str | None
    signature_state: str
    submitted_at: datetime
    ledger_seq: int


async def document(conn: AsyncConnection, key: str) -> Document | None:
    query = select(
        _p.package_id,
        _p.sender,
        _p.document_id,
        _p.document_key,
        _p.subject,
        _p.signature_state,
        _p.submitted_at,
        _p.ledger_seq,
    ).where(_p.document_key == key, _p.kind == DOCUMENT)
    row = (await conn.execute(query)).first()
    return None if row is None else Document(*row)


async def document_sender(conn: AsyncConnection, key: str) -> str | None:
    sender: str | None = await conn.scalar(
        select(_p.sender).where(_p.document_key == key, _p.kind == DOCUMENT)
    )
    return sender


# -- recipients' business states ----------------------------------------------------------------


async def recipient_states(conn: AsyncConnection, key: str) -> dict[str, RecipientState]:
    """What each recipient of document ``key`` has said of it (every recipient has a row)."""
    query = select(_r.recipient, _r.business, _r.recall_pending, _r.recall_answer).where(
        _r.document_key == key
    )
    return {r.recipient: RecipientState(*r[1:]) for r in await conn.execute(query)}


async def save_recipient_state(
    conn: AsyncConnection, key: str, recipient: str, state: RecipientState, now: datetime
) -> None:
    await conn.execute(
        update(recipient_state_table)
        .where(_r.document_key == key, _r.recipient == recipient)
        .values(
            business=state.business,
            recall_pending=state.recall_pending,
            recall_answer=state.recall_answer,
            updated_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class CopyBody:
    """A copy with what makes it live (its transport state since when, its priority, its inbox
    row's expiry if any) and its package's bytes (``item``: those of an inbox copy)."""

    mode: str
    transport: str
    transport_at: datetime
    priority: int
    inbox_expires_at: datetime | None
    item: InboxItem


async def copy_body(conn: AsyncConnection, delivery_id: str) -> CopyBody | None:
    query = (
        select(_d.recipient, _d.mode, _d.transport, _d.transport_at, _p.priority, _i.expires_at)
        .add_columns(_p.document_key, _p.signature_state, _p.sha256, _p.raw, _p.raw_claim)
        .join(package_table, _p.package_id == _d.package_id)
        .outerjoin(inbox_table, _i.delivery_id == _d.delivery_id)
        .where(_d.delivery_id == delivery_id)
    )
    r = (await conn.execute(query)).first()
    if r is None:
        return None
    item = InboxItem(r.recipient, r.document_key, r.signature_state, r.sha256, r.raw, r.raw_claim)
    return CopyBody(r.mode, r.transport, r.transport_at, r.priority, r.expires_at, item)


# -- pull inboxes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A copy waiting in a pull unit's inbox, as the unit's list shows it."""

    position: int
    delivery_id: str
    package_id: str
    kind: str
    document_key: str
    sender: str
    status: str | None
    subject: str | None
    size: int
    signature_state: str
    queued_at: datetime
    attempt: int


@dataclass(frozen=True, slots=True)
class InboxPage:
    entries: list[InboxEntry]
    next: int | None  # the position to list after, when there is more


_INBOX_PAGE: Select[Any] = (
    select(
        _i.position,
        _i.delivery_id,
        _i.package_id,
        _p.kind,
        _p.document_key,
        _p.sender,
        _p.status_code.label("status"),
        _p.subject,
        _p.size,
        _p.signature_state,
        _i.queued_at,
        _i.attempt,
    )
    .join(package_table, _p.package_id == _i.package_id)
    .where(
        _i.recipient == bindparam("unit"),
        _i.state == InboxState.READY,
        _i.position > bindparam("after"),
    )
    .order_by(_i.position)
    .limit(bindparam("rows"))
)


async def inbox_page(conn: AsyncConnection, unit: str, after: int, limit: int) -> InboxPage:
    """The unit's waiting copies after position ``after``, oldest first."""
    values = {"unit": unit, "after": after, "rows": limit + 1}
    entries = [InboxEntry(*row) for row in await conn.execute(_INBOX_PAGE, values)]
    more = len(entries) > limit
    return InboxPage(entries[:limit], entries[limit - 1].position if more else None)


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A copy in an inbox with its package's bytes (or the package store's name for them)."""

    recipient: str
    document_key: str
    signature_state: str
    sha256: str
    raw: bytes
    raw_claim: str | None


_INBOX_ITEMS: Select[Any] = (
    select(
        _i.delivery_id,
        _i.recipient,
        _p.document_key,
        _p.signature_state,
        _p.sha256,
        _p.raw,
        _p.raw_claim,
    )
    .join(package_table, _p.package_id == _i.package_id)
    .where(_i.delivery_id.in_(bindparam("ids", expanding=True)))
)


async def inbox_items(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, InboxItem]:
    """The copies with these delivery ids that are in an inbox, with their package's bytes,
    by id (read together: gateway.db.together)."""
    rows = await conn.execute(_INBOX_ITEMS, {"ids": list(ids)})
    return {delivery_id: InboxItem(*item) for delivery_id, *item in rows}


@dataclass(frozen=True, slots=True)
class InboxCopy:
    """A copy in an inbox, with its inbox state and the attempt it is at."""

    copy: Copy
    state: InboxState
    tries: int


def _inbox_copies() -> Select[Any]:
    return _copies(_i.state, _i.attempt).join(inbox_table, _i.delivery_id == _d.delivery_id)


def _inbox_copy(row: Row[Any]) -> InboxCopy:
    return InboxCopy(Copy.of(row), InboxState(row.state), row.attempt)


_INBOX_COPIES = _inbox_copies().where(_d.delivery_id.in_(bindparam("ids", expanding=True)))


async def inbox_copies(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, InboxCopy]:
    """The copies with these delivery ids that are in an inbox, by id (a Lookup of the
    writer)."""
    rows = await conn.execute(_INBOX_COPIES, {"ids": sorted(set(ids))})
    return {row.delivery_id: _inbox_copy(row) for row in rows}


async def overdue_inbox_copies(conn: AsyncConnection, now: datetime) -> list[InboxCopy]:
    """Copies still waiting in an inbox past their time-to-live."""
    query = _inbox_copies().where(_i.state == InboxState.READY, _i.expires_at < now)
    return [_inbox_copy(row) for row in await conn.execute(query)]


async def stopped_inbox_copies(
    conn: AsyncConnection, unit: str, ids: Sequence[str] | None
) -> list[InboxCopy]:
    """The unit's dead or expired inbox copies (those of ``ids`` only, when given)."""
    condition = [_i.recipient == unit, _i.state.in_((InboxState.DEAD, InboxState.EXPIRED))]
    if ids is not None:
        condition.append(_i.delivery_id.in_(list(ids)))
    return [_inbox_copy(row) for row in await conn.execute(_inbox_copies().where(*condition))]


async def in_inbox(conn: AsyncConnection, delivery_id: str) -> bool:
    return bool(await conn.scalar(select(_i.position).where(_i.delivery_id == delivery_id)))


async def package_of_copy(conn: AsyncConnection, delivery_id: str) -> str | None:
    package_id: str | None = await conn.scalar(
        select(_d.package_id).where(_d.delivery_id == delivery_id)
    )
    return package_id


async def insert_inbox(conn: AsyncConnection, row: Values) -> None:
    await conn.execute(insert(inbox_table), [row])


async def update_inbox(batch: Batch, delivery_id: str, values: Values) -> None:
    await batch.write(_UPDATE_INBOX, [{"of_delivery": delivery_id, **values}], keys=[delivery_id])


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    secret_sha256: str
    unit: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


_TOKEN_COLUMNS = (
    _t.token_id,
    _t.secret_sha256,
    _t.unit,
    _t.role,
    _t.created_at,
    _t.expires_at,
    _t.revoked_at,
)


async def insert_token(conn: AsyncConnection, row: Values) -> None:
    await conn.execute(insert(token_table), [row])


async def revoke_tokens(
    conn: AsyncConnection, now: datetime, *, token_id: str | None, unit: str | None
) -> int:
    """Revoke the token ``token_id``, or every token of ``unit``; how many were revoked."""
    condition = _t.token_id == token_id if token_id else _t.unit == unit
    result = await conn.execute(
        update(token_table).where(condition, _t.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(result.rowcount or 0)


async def tokens(conn: AsyncConnection) -> list[TokenRecord]:
    query = select(*_TOKEN_COLUMNS).order_by(_t.created_at)
    return [TokenRecord(*r) for r in await conn.execute(query)]


async def token(conn: AsyncConnection, token_id: str) -> TokenRecord | None:
    row = (await conn.execute(select(*_TOKEN_COLUMNS).where(_t.token_id == token_id))).first()
    return None if row is None else TokenRecord(*row)


# -- running processes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    process_id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime


_o = process_table.c


async def process_started(conn: AsyncConnection, record: ProcessRecord) -> None:
    await conn.execute(
        insert(process_table),
        [
            {
                "process_id": record.process_id,
                "host": record.host,
                "pid": record.pid,
                "started_at": record.started_at,
                "seen_at": record.seen_at,
            }
        ],
    )


async def process_seen(conn: AsyncConnection, process_id: str, now: datetime) -> None:
    await conn.execute(update(process_table).where(_o.process_id == process_id).values(seen_at=now))


async def process_stopped(conn: AsyncConnection, process_id: str, before: datetime) -> None:
    """Forget this process, and any not seen since ``before`` (they died without saying)."""
    await conn.execute(
        delete(process_table).where(or_(_o.process_id == process_id, _o.seen_at < before))
    )


async def live_processes(conn: AsyncConnection, since: datetime) -> list[ProcessRecord]:
    query = select(_o.process_id, _o.host, _o.pid, _o.started_at, _o.seen_at).where(
        _o.seen_at >= since
    )
    return [ProcessRecord(*r) for r in await conn.execute(query.order_by(_o.started_at))]
