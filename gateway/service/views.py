"""What operators, auditors and the parties to a document read: a document's journey, from
the working tables (current state) and the ledger (the timeline, with sequence numbers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.envelope import Kind
from gateway.errors import GatewayError
from gateway.ledger import EventType, Query, SqlLedger
from gateway.service.models import delivery_table, package_table, recipient_state_table
from gateway.service.tokens import Principal, Role


async def document_parties(ledger: SqlLedger, key: str) -> tuple[Any, list[str]]:
    """The document's package row and its recipients; not_found if there is none."""
    p, r = package_table.c, recipient_state_table.c
    async with ledger.engine.connect() as conn:
        package = (
            await conn.execute(
                select(package_table).where(p.document_key == key, p.kind == Kind.DOCUMENT.value)
            )
        ).first()
        if package is None:
            raise GatewayError("not_found", f"no document {key}")
        recipients = (
            (await conn.execute(select(r.recipient).where(r.document_key == key))).scalars().all()
        )
    return package, list(recipients)


def check_party(principal: Principal, sender: str, recipients: list[str]) -> None:
    if (
        principal.role is Role.UNIT
        and principal.unit != sender
        and principal.unit not in recipients
    ):
        raise GatewayError("forbidden", f"{principal.unit} neither sent nor received this document")


async def document_view(ledger: SqlLedger, principal: Principal, key: str) -> dict[str, Any]:
    package, recipients = await document_parties(ledger, key)
    check_party(principal, package.sender, recipients)
    d, r = delivery_table.c, recipient_state_table.c
    async with ledger.engine.connect() as conn:
        transports = {
            row.recipient: row
            for row in (
                await conn.execute(
                    select(d.recipient, d.transport, d.transport_at, d.reason, d.delivery_id).where(
                        d.package_id == package.package_id
                    )
                )
            ).all()
        }
        states = {
            row.recipient: row
            for row in (
                await conn.execute(select(recipient_state_table).where(r.document_key == key))
            ).all()
        }
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


def _recall(state: Any) -> str | None:
    if state is None:
        return None
    if state.recall_answer:
        return str(state.recall_answer)
    return "13" if state.recall_pending else None
