"""What operators, auditors and the parties to a document read: a document's journey, from
the working tables (current state) and the ledger (the timeline, with sequence numbers); and
the backlog of every unit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.engine import reader
from gateway.directory import DeliveryMode, Directory
from gateway.errors import GatewayError
from gateway.ledger import EventType, Query, SqlLedger
from gateway.service import store
from gateway.service.tokens import Principal, Role
from gateway.workflow import RecipientState


async def _document(
    conn: AsyncConnection, key: str
) -> tuple[store.Document, dict[str, RecipientState]]:
    document = await store.document(conn, key)
    if document is None:
        raise GatewayError("not_found", f"no document {key}")
    return document, await store.recipient_states(conn, key)


async def document_parties(ledger: SqlLedger, key: str) -> tuple[store.Document, list[str]]:
    """The document as accepted and its recipients; not_found if there is none."""
    async with ledger.engine.connect() as conn:
        document, states = await _document(conn, key)
    return document, list(states)


def check_party(principal: Principal, key: str, sender: str, recipients: list[str]) -> None:
    """A unit sees only the documents it sent or received: any other is as unknown to it as a
    missing one (not_found), so that guessable keys cannot be probed."""
    if (
        principal.role is Role.UNIT
        and principal.unit != sender
        and principal.unit not in recipients
    ):
        raise GatewayError("not_found", f"no document {key}")


async def document_view(ledger: SqlLedger, principal: Principal, key: str) -> dict[str, Any]:
    async with ledger.engine.connect() as conn:
        package, states = await _document(conn, key)
        recipients = list(states)
        check_party(principal, key, package.sender, recipients)
        transports = await store.copy_progress(conn, package.package_id)
    timeline: dict[str, list[dict[str, Any]]] = {code: [] for code in recipients}
    after: int | None = None
    while True:
        page = await ledger.query(
            Query(document=key, events=(EventType.STATUS,)), after=after, limit=1000
        )
        for entry in page.entries:
            event = entry.event
            # A recipient's own statuses, and the sender's recalls addressed to it.
            who = event.recipient if event.sender == package.sender else event.sender
            if who in timeline:
                timeline[who].append(
                    {"code": event.code, "at": entry.time.isoformat(), "ledger_seq": entry.seq}
                )
        if page.next_after is None:
            break
        after = page.next_after
    return {
        "document_key": key,
        "sender": package.sender,
        "document_id": package.document_id,
        "subject": package.subject,
        "submitted_at": package.submitted_at.isoformat(),
        "ledger_seq": package.ledger_seq,
        "signature_state": package.signature_state,
        "recipients": [
            {
                "code": code,
                "delivery_id": transports[code].delivery_id if code in transports else None,
                "transport": transports[code].transport if code in transports else None,
                "transport_at": transports[code].transport_at.isoformat()
                if code in transports
                else None,
                "reason": transports[code].reason if code in transports else None,
                "business": states[code].business if code in states else None,
                "statuses": timeline[code],
                "recall": _recall(states.get(code)),
            }
            for code in recipients
        ],
    }


def _recall(state: RecipientState | None) -> str | None:
    if state is None:
        return None
    if state.recall_answer:
        return state.recall_answer
    return "13" if state.recall_pending else None


async def backlog_view(
    engine: AsyncEngine,
    directory: Directory,
    unit: str | None = None,
    now: datetime | None = None,
    *,
    every_push_unit: bool = False,
) -> dict[str, Any]:
    """What waits, per unit (the pull inbox and the bus together: every copy not delivered),
    with the oldest waiting copy's age, and for push units their last delivery and last
    failure; units with nothing waiting and nothing failing are left out unless asked for
    (``unit``; ``every_push_unit``: each push unit, for its last delivery)."""
    now = now or datetime.now(UTC)
    async with reader(engine).connect() as conn:
        found = await store.backlogs(conn, unit)
        push = [
            u.code
            for u in directory
            if u.delivery is DeliveryMode.PUSH and (unit is None or u.code == unit)
        ]
        last = await store.last_deliveries(conn, push)
    codes = set(found) | {c for c, d in last.items() if d.failed_at is not None}
    if unit is not None:
        codes.add(unit)
    if every_push_unit:
        codes |= set(last)
    rows = []
    for code in codes:
        b = found.get(code) or store.UnitBacklog(code)
        known = directory.get(code)
        oldest = b.oldest_waiting_at
        row: dict[str, Any] = {
            "unit": code,
            "name": known.name if known else None,
            "delivery": known.delivery.value if known else None,
            "waiting": b.waiting,
            "oldest_waiting_at": oldest.isoformat() if oldest else None,
            "oldest_waiting_seconds": round((now - oldest).total_seconds()) if oldest else None,
            "retrying": b.retrying,
            "expired": b.expired,
            "dead": b.dead,
        }
        if code in last:
            d = last[code]
            row["last_delivered_at"] = d.delivered_at.isoformat() if d.delivered_at else None
            row["last_failure"] = (
                {"at": d.failed_at.isoformat(), "reason": d.failure} if d.failed_at else None
            )
        rows.append(row)
    rows.sort(key=lambda r: (-r["waiting"], -(r["oldest_waiting_seconds"] or 0), r["unit"]))
    ages = [r["oldest_waiting_seconds"] for r in rows if r["oldest_waiting_seconds"] is not None]
    return {
        "units": rows,
        "totals": {
            "units": sum(1 for r in rows if r["waiting"] or r["expired"] or r["dead"]),
            "waiting": sum(r["waiting"] for r in rows),
            "oldest_waiting_seconds": max(ages, default=None),
            "retrying": sum(r["retrying"] for r in rows),
            "expired": sum(r["expired"] for r in rows),
            "dead": sum(r["dead"] for r in rows),
        },
        "at": now.isoformat(),
    }
