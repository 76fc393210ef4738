"""Routes for auditors and operators: the ledger's proofs and entries, the directory."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.context import principal_of, require_role, runtime_of
from gateway.api.limits import RateLimited
from gateway.api.params import json_object, json_response, query_int
from gateway.errors import GatewayError
from gateway.ledger import Entry, EventType, Query
from gateway.ledger.checkpoint import parse_note
from gateway.service.evidence import bundle_for, configured_witnesses, receipt_with_acks
from gateway.service.tokens import Role
from gateway.service.views import check_party, document_parties

routes = web.RouteTableDef()


@routes.get("/v1/ledger/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    ledger = runtime_of(request).ledger
    # The checkpointer signs every N entries or T seconds; a request never forces a signature
    # unless there is none at all yet.
    latest = await ledger.latest_checkpoint() or await ledger.checkpoint()
    return web.Response(text=latest.note, content_type="text/plain")


# A fresh checkpoint on request at most this often (each is a signature and a row for ever).
FRESH_CHECKPOINT_SECONDS = 10


@routes.post("/v1/ledger/checkpoint")
async def fresh_checkpoint(request: web.Request) -> web.Response:
    """A checkpoint of the ledger as it is now (auditors, operators): the latest one when it
    already covers every entry, else a new one, at most one every FRESH_CHECKPOINT_SECONDS
    (``429 rate_limited`` with Retry-After before that)."""
    require_role(request, Role.AUDITOR, Role.OPERATOR)
    ledger = runtime_of(request).ledger
    latest = await ledger.latest_checkpoint()
    if latest is None or latest.tree_size < await ledger.size():
        if latest is not None:
            age = (datetime.now(UTC) - latest.created_at).total_seconds()
            if age < FRESH_CHECKPOINT_SECONDS:
                raise RateLimited(FRESH_CHECKPOINT_SECONDS - age)
        latest = await ledger.checkpoint()
    return web.Response(text=latest.note, content_type="text/plain")


@routes.post("/v1/ledger/cosignatures")
async def cosignature(request: web.Request) -> web.Response:
    """A witness's cosignature of one of our checkpoints (posted with an auditor's or
    operator's token; accepted only from the witnesses GATEWAY_LEDGER_WITNESSES names)."""
    require_role(request, Role.AUDITOR, Role.OPERATOR)
    body = await json_object(request)
    note, line = body.get("checkpoint"), body.get("cosignature")
    if not isinstance(note, str) or not isinstance(line, str):
        raise GatewayError("bad_request", "checkpoint and cosignature must be strings")
    runtime = runtime_of(request)
    witnesses = configured_witnesses(runtime.gateway.settings.ledger)
    stored, kept = await runtime.ledger.add_cosignature(note, line, witnesses)
    cosigned = parse_note(await runtime.ledger.cosigned(stored)).signatures
    return json_response(
        {
            "tree_size": stored.tree_size,
            "witness": kept.witness,
            "cosignatures": len(cosigned) - 1,
        },
        status=201,
    )


@routes.get("/v1/ledger/receipts")
async def receipts(request: web.Request) -> web.Response:
    principal = principal_of(request)
    document = request.query.get("document")
    if not document:
        raise GatewayError("bad_request", "the query parameter document is required")
    recipient = request.query.get("recipient") or None
    runtime = runtime_of(request)
    package, recipients = await document_parties(runtime.ledger, document)
    check_party(principal, document, package.sender, recipients)
    if recipient is not None and recipient not in recipients:
        raise GatewayError("not_found", f"{recipient} is not a recipient of {document}")
    receipt = await receipt_with_acks(runtime.ledger, document, recipient)
    return json_response({"receipts": [receipt.to_json()]})


@routes.get("/v1/ledger/bundles/{document_key:.+}")
async def bundle(request: web.Request) -> web.Response:
    """The letter's evidence bundle, for its sender, its recipients, operators and auditors."""
    document = request.match_info["document_key"]
    runtime = runtime_of(request)
    package, recipients = await document_parties(runtime.ledger, document)
    check_party(principal_of(request), document, package.sender, recipients)
    gateway = runtime.gateway
    data = await bundle_for(
        gateway.ledger, gateway.trust, gateway.bodies, document, gateway.clock()
    )
    return web.Response(
        body=data,
        content_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="evidence.zip"'},
    )


@routes.get("/v1/ledger/consistency")
async def consistency(request: web.Request) -> web.Response:
    require_role(request, Role.AUDITOR, Role.OPERATOR)
    old, new = query_int(request, "from"), query_int(request, "to")
    ledger = runtime_of(request).ledger
    size = await ledger.size()
    if not 0 < old <= new <= size:
        raise GatewayError("bad_request", f"need 0 < from <= to <= {size}")
    proof = await ledger.consistency_proof(old, new)
    return json_response(
        {"from": old, "to": new, "proof": [base64.b64encode(h).decode() for h in proof]}
    )


def _time(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise GatewayError("bad_request", f"{name} must be an ISO 8601 time") from e


def entry_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """Ledger entries as the API and the console's exports write them."""
    return [
        {
            "seq": e.seq,
            "time": e.time.isoformat(),
            "type": e.event.type.value,
            "document": e.event.document,
            "sender": e.event.sender,
            "recipient": e.event.recipient,
            "code": e.event.code,
            "package_sha256": e.event.package_sha256,
            "details": dict(e.event.details),
        }
        for e in entries
    ]


def entries_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["seq"])
    writer.writeheader()
    writer.writerows(
        row | {"details": json.dumps(row["details"], ensure_ascii=False)} for row in rows
    )
    return out.getvalue()


def entries_query(request: web.Request, unit: str | None) -> Query:
    """The ledger query of a request's parameters: document, event (a comma-separated list of
    event types), since and until (ISO 8601 times), and ``unit``."""
    events: tuple[EventType, ...] = ()
    if request.query.get("event"):
        try:
            events = tuple(EventType(e) for e in request.query["event"].split(","))
        except ValueError as e:
            raise GatewayError("bad_request", f"unknown event type: {e}") from e
    try:
        return Query(
            document=request.query.get("document") or None,
            unit=unit,
            events=events,
            since=_time(request, "since"),
            until=_time(request, "until"),
        )
    except ValueError as e:
        raise GatewayError("bad_request", str(e)) from e


@routes.get("/v1/ledger/entries")
async def entries(request: web.Request) -> web.Response:
    principal = principal_of(request)
    unit = request.query.get("unit") or None
    if principal.role is Role.UNIT:
        if unit not in (None, principal.unit):
            raise GatewayError("forbidden", f"{principal.unit} may read only its own entries")
        unit = principal.unit
    query = entries_query(request, unit)
    limit = query_int(request, "limit", 100, low=1, high=1000)
    after = query_int(request, "after") if request.query.get("after") else None
    page = await runtime_of(request).ledger.query(query, after=after, limit=limit)
    rows = entry_rows(page.entries)
    nxt = None if page.next_after is None else str(page.next_after)
    if request.query.get("format", "json") == "csv":
        headers = {"X-Next-After": nxt} if nxt else {}
        return web.Response(text=entries_csv(rows), content_type="text/csv", headers=headers)
    return json_response({"entries": rows, "next": nxt})


@routes.get("/v1/units")
async def units(request: web.Request) -> web.Response:
    directory = runtime_of(request).gateway.directory
    parent = request.query.get("parent")
    chosen = directory.children(parent) if parent else directory
    return json_response({"units": [u.as_dict() for u in chosen]})


@routes.get("/v1/units/{code}")
async def unit(request: web.Request) -> web.Response:
    found = runtime_of(request).gateway.directory.get(request.match_info["code"])
    if found is None:
        raise GatewayError("not_found", f"no unit {request.match_info['code']}")
    return json_response(found.as_dict())
