"""What operators, auditors and the parties to a document read: a document's journey, from
the working tables (current state) and the ledger (the timeline, with sequence numbers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

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


def check_party(principal: Principal, sender: str, recipients: list[str]) -> None:
    if (
        principal.role is Role.UNIT
        and principal.unit != sender
        and principal.unit not in recipients
    ):
        raise GatewayError("forbidden", f"{principal.unit} neither sent nor received this document")


async def document_view(ledger: SqlLedger, principal: Principal, key: str) -> dict[str, Any]:
    async with ledger.engine.connect() as conn:
        package, states = await _document(conn, key)
        recipients = list(states)
        check_party(principal, package.sender, recipients)
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
