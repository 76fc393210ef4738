"""The console's pages (GET): overview, document search, a document's timeline, dead letters,
units and the ledger, and the downloads (receipts, audit exports). Operators and auditors
see the same pages; only operators see the forms that act."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.api.audit import entries_csv, entries_query, entry_rows
from gateway.api.context import CERTIFICATES
from gateway.api.params import query_int
from gateway.console.chart import activity_chart
from gateway.console.forms import VERIFY
from gateway.console.text import LOCAL, nfc
from gateway.console.web import Refused, caller_of, page, render
from gateway.db.engine import reader
from gateway.directory import DeliveryMode
from gateway.errors import GatewayError
from gateway.ledger import EventType, Query
from gateway.service import searches
from gateway.service.alerts import current_alerts, is_failing, watched_certificates
from gateway.service.attachments import document_attachments
from gateway.service.transport import Transport
from gateway.service.views import backlog_view, document_view

routes = web.RouteTableDef()

WINDOW = timedelta(hours=3)  # the overview's chart
PAGE = 50  # documents per search page, unless asked for (limit)


@routes.get("/")
@page
async def overview(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    runtime = caller.runtime
    now = datetime.now(UTC)
    certificates = watched_certificates(request.app[CERTIFICATES].of(runtime), runtime)
    alerts, backlog = await current_alerts(runtime, certificates, now)
    activity = await runtime.ledger.activity(now - WINDOW)
    refusals = Counter[str]()
    for a in activity:
        if a.type is EventType.REJECTED:
            refusals[a.code or "?"] += a.count
    latest = await runtime.ledger.latest_checkpoint()
    horizon = now + timedelta(days=runtime.settings.alerts.cert_days)
    return render(
        request,
        "overview.html",
        caller.session,
        caller=caller,
        chart=activity_chart(activity, now - WINDOW, now),
        refusals=refusals.most_common(),
        totals=backlog["totals"],
        top=backlog["units"][:10],
        failing=[r for r in backlog["units"] if is_failing(r)],
        expiring=sorted(
            (c for c in certificates if c.not_after <= horizon), key=lambda c: c.not_after
        ),
        checkpoint=latest,
        checkpoint_age=(now - latest.created_at).total_seconds() if latest else None,
        ledger_size=await runtime.ledger.size(),
        alerts=alerts,
    )


def _day(request: web.Request, name: str, end: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, a day in Asia/Ho_Chi_Minh) of the search form, as a UTC time."""
    value = request.query.get(name, "").strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=LOCAL)
    except ValueError as e:
        raise GatewayError("bad_request", f"{name} must be a date YYYY-MM-DD") from e
    return (day + timedelta(days=1) if end else day).astimezone(UTC)


@routes.get("/documents")
@page
async def documents(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in {t.value for t in Transport}:
        raise GatewayError("bad_request", f"unknown state {state}")
    find = searches.DocumentFilter(
        text=nfc(q.get("q", "").strip()) or None,
        sender=q.get("sender", "").strip() or None,
        recipient=q.get("recipient", "").strip() or None,
        state=state,
        since=_day(request, "since"),
        until=_day(request, "until", end=True),
    )
    before = query_int(request, "before") if q.get("before") else None
    limit = query_int(request, "limit", PAGE, low=1, high=500)
    async with reader(caller.runtime.ledger.engine).connect() as conn:
        rows = await searches.search_documents(conn, find, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    following = None
    if more:
        args = {k: v for k, v in q.items() if k != "before" and v}
        following = request.rel_url.with_query({**args, "before": str(rows[-1].ledger_seq)})
    return render(
        request,
        "documents.html",
        caller.session,
        caller=caller,
        rows=rows,
        form=dict(q),
        states=[t.value for t in Transport],
        following=str(following) if following else None,
    )


# Events of a copy's journey, in the timeline beside the business statuses.
JOURNEY = (
    EventType.QUEUED,
    EventType.DELIVERED,
    EventType.RETRYING,
    EventType.EXPIRED,
    EventType.DEAD_LETTERED,
    EventType.REDRIVEN,
    EventType.STATUS,
)


@routes.get("/documents/{key}")
@page
async def document(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    key = request.match_info["key"]
    ledger = caller.runtime.ledger
    view = await document_view(ledger, caller.principal, key)
    timeline: dict[str, list[dict[str, Any]]] = {r["code"]: [] for r in view["recipients"]}
    after: int | None = None
    while True:
        found = await ledger.query(Query(document=key), after=after, limit=1000)
        for entry in found.entries:
            event = entry.event
            who = event.recipient if event.sender == view["sender"] else event.sender
            row = {
                "seq": entry.seq,
                "time": entry.time,
                "type": event.type.value,
                "code": event.code,
                "details": dict(event.details),
            }
            if who in timeline and event.type in JOURNEY:
                timeline[who].append(row)
        if found.next_after is None:
            break
        after = found.next_after
    return render(
        request,
        "document.html",
        caller.session,
        caller=caller,
        doc=view,
        timeline=timeline,
        attachments=await document_attachments(caller.runtime.gateway, key),
    )


@routes.get("/documents/{key}/attachments/{index}")
@page
async def attachment(request: web.Request) -> web.StreamResponse:
    """An attachment's content, for operators (who may read every unit's inbox; auditors read
    the facts, not the content). Always a download, never shown in the console's own origin."""
    caller = await caller_of(request)
    if not caller.operator:
        raise Refused(403, "forbidden")
    key = request.match_info["key"]
    found = await document_attachments(caller.runtime.gateway, key)
    try:
        chosen = found[int(request.match_info["index"])]
    except (ValueError, IndexError) as e:
        raise GatewayError("not_found", f"{key} has no such attachment") from e
    return web.Response(
        body=chosen.data,
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(chosen.name or 'file')}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@routes.get("/dead")
@page
async def dead(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    unit = request.query.get("unit") or None
    runtime = caller.runtime
    async with reader(runtime.ledger.engine).connect() as conn:
        copies = await searches.stopped_copies(conn, unit, limit=500)
    by_unit: dict[str, list[searches.StoppedCopy]] = {}
    for c in copies:
        by_unit.setdefault(c.recipient, []).append(c)
    directory = runtime.gateway.directory
    return render(
        request,
        "dead.html",
        caller.session,
        caller=caller,
        by_unit=by_unit,
        names={code: (u.name if (u := directory.get(code)) else "") for code in by_unit},
        done=request.query.get("redriven"),
    )


@routes.get("/units")
@page
async def units(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    runtime = caller.runtime
    directory = runtime.gateway.directory
    backlog = await backlog_view(runtime.ledger.engine, directory, every_push_unit=True)
    rows = {r["unit"]: r for r in backlog["units"]}
    certificates = request.app[CERTIFICATES].of(runtime)
    q = request.query.get("q", "").strip().casefold()
    chosen = [u for u in directory if not q or q in u.code.casefold() or q in u.name.casefold()]
    return render(
        request,
        "units.html",
        caller.session,
        caller=caller,
        units=chosen,
        backlog=rows,
        certs={u.code: certificates.of_unit(u.code) for u in chosen},
        push=DeliveryMode.PUSH,
        modes=[m.value for m in DeliveryMode],
        q=request.query.get("q", ""),
        done=request.query.get("done"),
    )


@routes.get("/ledger")
@page
async def ledger(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    store = caller.runtime.ledger
    entry = None
    if request.query.get("seq"):
        entry = entry_rows([await store.entry(query_int(request, "seq"))])[0]
    run = request.app[VERIFY]
    return render(
        request,
        "ledger.html",
        caller.session,
        caller=caller,
        size=await store.size(),
        checkpoint=await store.latest_checkpoint(),
        entry=json.dumps(entry, ensure_ascii=False, indent=2) if entry else None,
        run=run,
        events=[e.value for e in EventType],
    )


@routes.get("/ledger/export")
@page
async def export(request: web.Request) -> web.StreamResponse:
    """An audit query's entries as CSV or JSON, a page at a time (``after`` for the next)."""
    caller = await caller_of(request)
    query = entries_query(request, request.query.get("unit") or None)
    limit = query_int(request, "limit", 1000, low=1, high=10_000)
    after = query_int(request, "after") if request.query.get("after") else None
    found = await caller.runtime.ledger.query(query, after=after, limit=limit)
    rows = entry_rows(found.entries)
    headers = {"Content-Disposition": 'attachment; filename="ledger-entries.{}"'}
    if found.next_after is not None:
        headers["X-Next-After"] = str(found.next_after)
    if request.query.get("format") == "csv":
        headers["Content-Disposition"] = headers["Content-Disposition"].format("csv")
        return web.Response(text=entries_csv(rows), content_type="text/csv", headers=headers)
    headers["Content-Disposition"] = headers["Content-Disposition"].format("json")
    nxt = None if found.next_after is None else str(found.next_after)
    body = json.dumps({"entries": rows, "next": nxt}, ensure_ascii=False, indent=1)
    return web.Response(text=body, content_type="application/json", headers=headers)


@routes.get("/ledger/receipt")
@page
async def receipt(request: web.Request) -> web.StreamResponse:
    """A receipt to download: of one entry (``seq``), or of a document's entries for one
    recipient (``document``, ``recipient``), for ``gateway audit verify-receipt``."""
    caller = await caller_of(request)
    store = caller.runtime.ledger
    if request.query.get("seq"):
        seq = query_int(request, "seq")
        made = await store.receipt(seq)
        name = f"receipt-{seq}.json"
    elif request.query.get("document"):
        document = request.query["document"]
        made = await store.receipt_for_document(document, request.query.get("recipient") or None)
        name = "receipt-document.json"
    else:
        raise GatewayError("bad_request", "give seq, or document (and recipient)")
    return web.Response(
        text=json.dumps(made.to_json(), ensure_ascii=False, indent=1),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
