"""Routes of the exchange itself: submitting packages, the pull inbox, a document's journey."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from base64 import b64encode
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from aiohttp import web

from gateway.api.context import OUTCOME, UPLOADS, principal_of, runtime_of
from gateway.api.params import json_object, json_response, query_int
from gateway.api.problems import with_request_id
from gateway.envelope import Profile
from gateway.errors import GatewayError
from gateway.service.inbox import FetchedCopy, InboxAck
from gateway.service.views import document_view

routes = web.RouteTableDef()

SPOOL_ABOVE = 1024 * 1024  # bodies larger than this are spooled to disk as they arrive
# What a package may be sent as (no Content-Type at all reads as application/octet-stream).
PACKAGE_TYPES = frozenset({"application/xml", "text/xml", "application/octet-stream"})


@contextlib.asynccontextmanager
async def package_body(
    request: web.Request, limit: int, timeout: float
) -> AsyncIterator[bytes | BinaryIO]:
    """The request body, refused with xml_too_large past ``limit`` bytes and with
    request_timeout when it has not arrived within ``timeout`` seconds. A large body (a
    scanned letter) is written to an unnamed temporary file as it arrives and handed on as that
    open file, so that the package is never held in memory while it is verified; the file is
    gone when the request ends."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise GatewayError("xml_too_large", f"{declared} bytes is over the limit of {limit} bytes")
    with contextlib.ExitStack() as files:
        try:
            async with asyncio.timeout(timeout):
                if declared is not None and declared <= SPOOL_ABOVE:
                    body: bytes | BinaryIO = await request.read()
                else:
                    spool = files.enter_context(tempfile.TemporaryFile())
                    body = await _spool(request, spool, limit)
        except TimeoutError as e:
            raise GatewayError(
                "request_timeout", f"the body did not arrive within {timeout:g} s"
            ) from e
        yield body


async def _spool(request: web.Request, spool: BinaryIO, limit: int) -> BinaryIO:
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise GatewayError("xml_too_large", f"the body is over the limit of {limit} bytes")
        spool.write(chunk)
    spool.seek(0)
    return spool


# A native AMQP unit's signed statement of reception, sent with its first status packet.
ACK_HEADER = "X-Gateway-Acknowledgement"


@routes.post("/v1/packages")
async def submit_package(request: web.Request) -> web.Response:
    principal = principal_of(request)
    profile_name = request.query.get("profile", "strict")
    if profile_name not in ("strict", "compat"):
        raise GatewayError("bad_request", "profile must be strict or compat")
    if request.content_type not in PACKAGE_TYPES:
        raise GatewayError(
            "unsupported_media_type",
            f"the body is {request.content_type}; send the edXML package as application/xml",
        )
    runtime = runtime_of(request)
    uploads = request.app[UPLOADS]
    limit = runtime.settings.envelope.max_bytes
    # the token's packages being received or checked at once are counted
    with uploads.hold(principal.token_id):
        async with package_body(request, limit, uploads.timeout) as data:
            if not data:
                raise GatewayError("bad_request", "the body must be the edXML package")
            submission = await runtime.gateway.submit(
                data,
                principal,
                Profile(profile_name),
                acknowledgement=request.headers.get(ACK_HEADER),
            )
    request[OUTCOME] = "accepted" if submission.status == 202 else "replayed"
    return json_response(submission.answer, submission.status)


MAX_WAIT_SECONDS = 30  # a long poll's longest wait: under the usual client and proxy timeouts


def _inbox_unit(request: web.Request) -> str:
    principal = principal_of(request)
    unit = request.query.get("unit", principal.unit)
    if not principal.may_read_inbox(unit):
        raise GatewayError("forbidden", f"a {principal.role} token may not read {unit}'s inbox")
    return unit


@routes.get("/v1/inbox")
async def inbox(request: web.Request) -> web.Response:
    unit = _inbox_unit(request)
    limit = query_int(request, "limit", 50, low=1, high=500)
    after = query_int(request, "after", 0)
    wait = query_int(request, "wait", 0, low=0, high=MAX_WAIT_SECONDS)
    include = request.query.get("include")
    if include not in (None, "package"):
        raise GatewayError("bad_request", 'include may only be "package"')
    runtime = runtime_of(request)
    inboxes = runtime.gateway.inboxes
    page = await inboxes.page(
        unit, after=after, limit=limit, wait=min(wait, runtime.settings.api.long_poll)
    )
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
    if include:
        for item, package in zip(items, await inboxes.packages(page.entries), strict=True):
            item["package"] = None if package is None else b64encode(package).decode("ascii")
    return json_response({"items": items, "next": None if page.next is None else str(page.next)})


def _package_answer(copy: FetchedCopy) -> web.Response:
    """A copy's package bytes exactly as signed, with what the gateway knows of them."""
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


@routes.get("/v1/inbox/{delivery_id}")
async def inbox_fetch(request: web.Request) -> web.Response:
    copy = await runtime_of(request).gateway.inboxes.item(
        principal_of(request), request.match_info["delivery_id"]
    )
    return _package_answer(copy)


@routes.get("/v1/deliveries/{delivery_id}/body")
async def delivery_body(request: web.Request) -> web.Response:
    """The bytes of a copy an AMQP unit received as a claim (``gw-claim``) on its queue."""
    copy = await runtime_of(request).gateway.claimed.body(
        principal_of(request), request.match_info["delivery_id"]
    )
    return _package_answer(copy)


def _inbox_ack(body: Any, delivery_id: str, where: str = "") -> InboxAck:
    """One acknowledgement from a request's JSON: ``where`` names it within a list."""
    if not isinstance(body, dict):
        raise GatewayError("bad_request", f"{where}an acknowledgement is a JSON object")
    result = body.get("result")
    if result not in ("done", "fail"):
        raise GatewayError("bad_request", f'{where}result must be "done" or "fail"')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise GatewayError("bad_request", f"{where}reason must be a string")
    statement = body.get("acknowledgement")
    if statement is not None and (not isinstance(statement, str) or result != "done"):
        raise GatewayError(
            "bad_request", f"{where}acknowledgement is a compact JWS, with result done"
        )
    return InboxAck(delivery_id, result == "done", reason, statement)


@routes.post("/v1/inbox/{delivery_id}/ack")
async def inbox_ack(request: web.Request) -> web.Response:
    ack = _inbox_ack(await json_object(request), request.match_info["delivery_id"])
    state = await runtime_of(request).gateway.acknowledge(
        principal_of(request), ack.delivery_id, ack.done, ack.reason, ack.statement
    )
    return json_response({"delivery_id": ack.delivery_id, "state": state})


MAX_ACKS = 500  # acknowledgements in one POST /v1/inbox/ack


@routes.post("/v1/inbox/ack")
async def inbox_ack_all(request: web.Request) -> web.Response:
    """Several copies acknowledged at once, each answered on its own (its state, or the
    problem that refused it), in the order given."""
    items = (await json_object(request)).get("acks")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ACKS:
        raise GatewayError("bad_request", f"acks must be a list of 1 to {MAX_ACKS} objects")
    acks = []
    for i, item in enumerate(items):
        delivery_id = item.get("delivery_id") if isinstance(item, dict) else None
        if not isinstance(delivery_id, str) or not delivery_id:
            raise GatewayError("bad_request", f"acks[{i}]: delivery_id must be a string")
        acks.append(_inbox_ack(item, delivery_id, f"acks[{i}]: "))
    answers = await runtime_of(request).gateway.acknowledge_all(principal_of(request), acks)
    results = [
        {"delivery_id": ack.delivery_id, "state": answer}
        if isinstance(answer, str)
        else {"delivery_id": ack.delivery_id, "problem": with_request_id(answer.to_problem())}
        for ack, answer in zip(acks, answers, strict=True)
    ]
    return json_response({"results": results})


@routes.get("/v1/notices")
async def notices(request: web.Request) -> web.Response:
    """A sender's transport notices not yet acknowledged (its copies that expired, were
    dead-lettered or redriven), oldest first; operators may name another unit."""
    unit = _inbox_unit(request)
    limit = query_int(request, "limit", 50, low=1, high=500)
    after = query_int(request, "after", 0)
    found, nxt = await runtime_of(request).gateway.notices.waiting([unit], after=after, limit=limit)
    return json_response(
        {"notices": [n.to_json() for n in found], "next": None if nxt is None else str(nxt)}
    )


@routes.post("/v1/notices/ack")
async def notices_ack(request: web.Request) -> web.Response:
    body = await json_object(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 500:
        raise GatewayError("bad_request", "ids must be a list of at most 500 notice ids")
    count = await runtime_of(request).gateway.notices.acknowledge(principal_of(request), ids)
    return json_response({"acknowledged": count})


@routes.get("/v1/documents/{document_key:.+}")
async def document(request: web.Request) -> web.Response:
    key = request.match_info["document_key"]
    return json_response(
        await document_view(runtime_of(request).ledger, principal_of(request), key)
    )
