"""Routes of the exchange itself: submitting packages, the pull inbox, a document's journey."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from aiohttp import web

from gateway.api.context import OUTCOME, principal_of, runtime_of
from gateway.envelope import Profile
from gateway.errors import GatewayError
from gateway.service.views import document_view

routes = web.RouteTableDef()

SPOOL_ABOVE = 1024 * 1024  # bodies larger than this are spooled to disk as they arrive


@contextlib.asynccontextmanager
async def package_body(request: web.Request, limit: int) -> AsyncIterator[bytes | BinaryIO]:
    """The request body, refused with xml_too_large past ``limit`` bytes. A large body (a
    scanned letter) is written to an unnamed temporary file as it arrives and handed on as that
    open file, so that the package is never held in memory while it is verified; the file is
    gone when the request ends."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise GatewayError("xml_too_large", f"{declared} bytes is over the limit of {limit} bytes")
    if declared is not None and declared <= SPOOL_ABOVE:
        yield await request.read()
        return
    with tempfile.TemporaryFile() as spool:
        size = 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise GatewayError("xml_too_large", f"the body is over the limit of {limit} bytes")
            spool.write(chunk)
        spool.seek(0)
        yield spool


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


@routes.post("/v1/packages")
async def submit_package(request: web.Request) -> web.Response:
    principal = principal_of(request)
    profile_name = request.query.get("profile", "strict")
    if profile_name not in ("strict", "compat"):
        raise GatewayError("bad_request", "profile must be strict or compat")
    runtime = runtime_of(request)
    async with package_body(request, runtime.settings.envelope.max_bytes) as data:
        if not data:
            raise GatewayError("bad_request", "the body must be the edXML package")
        submission = await runtime.gateway.submit(data, principal, Profile(profile_name))
    request[OUTCOME] = "accepted" if submission.status == 202 else "replayed"
    return _json(submission.answer, submission.status)


def _inbox_unit(request: web.Request) -> str:
    principal = principal_of(request)
    unit = request.query.get("unit", principal.unit)
    if not principal.may_read_unit(unit):
        raise GatewayError("forbidden", f"{principal.unit} may read only its own inbox")
    return unit


@routes.get("/v1/inbox")
async def inbox(request: web.Request) -> web.Response:
    unit = _inbox_unit(request)
    try:
        limit = int(request.query.get("limit", "50"))
        after = int(request.query.get("after") or 0)
    except ValueError as e:
        raise GatewayError("bad_request", "limit and after are integers") from e
    if not 1 <= limit <= 500:
        raise GatewayError("bad_request", "limit must be 1..500")
    page = await runtime_of(request).gateway.inboxes.page(unit, after=after, limit=limit)
    items = [
        {
            "delivery_id": e.delivery_id,
            "package_id": e.package_id,
            "kind": e.kind,
            "document_key": e.document_key,
            "sender": e.sender,
            "status": e.status,
            "subject": e.subject,
            "size": e.size,
            "signature_state": e.signature_state,
            "queued_at": e.queued_at.isoformat(),
            "attempt": e.attempt,
        }
        for e in page.entries
    ]
    return _json({"items": items, "next": None if page.next is None else str(page.next)})


@routes.get("/v1/inbox/{delivery_id}")
async def inbox_fetch(request: web.Request) -> web.Response:
    copy = await runtime_of(request).gateway.inboxes.item(
        principal_of(request), request.match_info["delivery_id"]
    )
    return web.Response(
        body=copy.body,
        content_type="application/xml",
        headers={
            "X-Gateway-Delivery-Id": copy.delivery_id,
            "X-Gateway-Document-Key": copy.document_key,
            "X-Gateway-Signature-State": copy.signature_state,
            "X-Gateway-Package-Sha256": copy.sha256,
        },
    )


@routes.post("/v1/inbox/{delivery_id}/ack")
async def inbox_ack(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError as e:
        raise GatewayError("bad_request", "the body must be JSON") from e
    result = body.get("result") if isinstance(body, dict) else None
    if result not in ("done", "fail"):
        raise GatewayError("bad_request", 'result must be "done" or "fail"')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise GatewayError("bad_request", "reason must be a string")
    delivery_id = request.match_info["delivery_id"]
    state = await runtime_of(request).gateway.inboxes.ack(
        principal_of(request), delivery_id, result == "done", reason
    )
    return _json({"delivery_id": delivery_id, "state": state})


@routes.get("/v1/documents/{document_key:.+}")
async def document(request: web.Request) -> web.Response:
    key = request.match_info["document_key"]
    return _json(await document_view(runtime_of(request).ledger, principal_of(request), key))
