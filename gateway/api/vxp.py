"""The national-axis façade: the calls of the axis's REST protocol at ``/vxp/<call>``, mounted
only when ``GATEWAY_VXP_ENABLED`` is true, so that agency software written for the axis can
use the gateway unchanged. Each request is authenticated by its HMAC signature, its timestamp
and its novelty, then handed to the gateway's own operations (gateway.service.vxp).

Every reply is HTTP 200 with the protocol's JSON (``status`` OK or FAIL, the gateway's error
code in ``ErrorCode``), except downloadEdoc's file: the axis's clients read the JSON, not the
HTTP status. ``X-Gateway-Error`` names the code of a FAIL for logs and proxies."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet

from adapters.upstream.links import Link
from gateway.api.context import LIMITER, UPLOADS, runtime_of
from gateway.api.exchange import package_body
from gateway.api.params import json_response
from gateway.api.vxp_protocol import PREFIX, failure, parse_timestamp, read_signed, reply
from gateway.config import Settings
from gateway.envelope import Kind, Profile
from gateway.errors import GatewayError
from gateway.service import vxp
from gateway.service.core import body_sha256
from gateway.service.runtime import Runtime
from gateway.service.tokens import Principal, Role
from gateway.service.vxp_secrets import Credentials, key_file, open_key

log = logging.getLogger(__name__)

ROOT = "/vxp"
# updateStatus values that only say where the system is with a copy: accepted, nothing moves.
PROGRESS_ONLY = frozenset({"inbox", "processing"})
# Business answers: in this gateway they are signed status packets (servicetype status).
BUSINESS_ANSWERS = {"acceptance": "03", "rejection": "02"}


@dataclass
class Facade:
    """The façade's state in one application: the key of the secrets and, once the gateway
    has started, its credentials store."""

    key: Fernet
    clock_skew: int
    credentials: Credentials | None = field(default=None)

    def of(self, runtime: Runtime) -> Credentials:
        if self.credentials is None or self.credentials.engine is not runtime.ledger.engine:
            self.credentials = Credentials(runtime.ledger.engine, self.key, self.clock_skew)
        return self.credentials


FACADE = web.AppKey("vxp_facade", Facade)


@dataclass(frozen=True)
class Call:
    """An authenticated call: the system's unit as a principal and its signed parameters;
    ``link``: the upstream link whose peer the system is (another province's gateway)."""

    principal: Principal
    params: dict[str, str]
    runtime: Runtime
    link: Link | None = None

    def param(self, name: str) -> str:
        value = self.params.get(name.lower())
        if value is None:
            raise GatewayError("bad_request", f"send {PREFIX}{name}")
        return value


Answer = dict[str, Any] | web.StreamResponse
Handler = Callable[[web.Request, Call], Awaitable[Answer]]


def _reply(body: dict[str, Any]) -> web.Response:
    response = json_response(body)
    if body["status"] == "FAIL":
        response.headers["X-Gateway-Error"] = body["ErrorCode"]
    return response


async def authenticate(request: web.Request, needs: tuple[str, ...]) -> Call:
    """The signed parameters, the timestamp, the secret and the request's novelty, in that
    order (docs/national-axis.md); a system that passes speaks for its unit (its systemId)
    with the unit role."""
    runtime = runtime_of(request)
    facade = request.app[FACADE]
    signed = read_signed(request.headers, needs)
    drift = abs((datetime.now(UTC) - parse_timestamp(signed.stamp)).total_seconds())
    if drift > facade.clock_skew:
        raise GatewayError(
            "unauthenticated",
            f"the timestamp is {drift:.0f} s from the gateway's clock; at most "
            f"{facade.clock_skew} s is accepted",
        )
    credentials = facade.of(runtime)
    secret = await credentials.secret_of(signed.system_id)
    if secret is None or not signed.matches(secret):
        raise GatewayError(
            "unauthenticated",
            f"the signature does not verify for system {signed.system_id} (unknown system, "
            "revoked or wrong secret)",
        )
    link = runtime.gateway.links.of_peer(signed.system_id)
    if signed.system_id not in runtime.gateway.directory and link is None:
        raise GatewayError(
            "unauthenticated",
            f"{signed.system_id} is neither in the unit directory nor an upstream link's peer",
        )
    if not await credentials.first_time(signed.system_id, signed.stamp, signed.signature):
        raise GatewayError("unauthenticated", "this signed request was received before (replay)")
    principal = Principal(f"vxp:{signed.system_id}", signed.system_id, Role.UNIT)
    request.app[LIMITER].take(principal.token_id)
    return Call(principal, signed.params, runtime, link)


def endpoint(
    needs: tuple[str, ...], handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler: authenticate, run, and answer in the protocol's shape whatever
    happens (a refusal or a failure of the gateway is a FAIL reply, never a problem)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            answer = await handler(request, await authenticate(request, needs))
        except GatewayError as e:
            return _reply(failure(e.code, e.message))
        except Exception:
            log.exception("the national-axis call %s failed", request.path)
            return _reply(failure("internal_error", "the gateway failed; quote X-Request-Id"))
        if isinstance(answer, web.StreamResponse):
            return answer
        return _reply(reply(answer))

    return handle


def _recipients(text: str) -> list[str]:
    try:
        to = json.loads(text)
    except ValueError:
        to = None
    if not isinstance(to, list) or not to or not all(isinstance(c, str) for c in to):
        raise GatewayError("bad_request", f'{PREFIX}to must be a JSON array of OrganIds: ["…"]')
    return to


async def send_edoc(request: web.Request, call: Call) -> Answer:
    """A letter or status packet, submitted as the system's unit in the strict profile; from
    a link's peer, as received from the link, in the link's profile."""
    unit = call.principal.unit
    if call.link is None and call.param("from") != unit:
        raise GatewayError("forbidden", f"system {unit} sends as itself, not {call.param('from')}")
    kind = vxp.service_kind(call.param("servicetype"))
    message_type = call.param("messagetype")
    vxp.check_message_type(kind, message_type)
    to = _recipients(call.param("to"))
    relayed_from = call.param("from") if call.link is not None else None
    expect = vxp.expected(kind, message_type, to, relayed_from)
    uploads = request.app[UPLOADS]
    limit = call.runtime.settings.envelope.max_bytes
    with uploads.hold(call.principal.token_id):
        async with package_body(request, limit, uploads.timeout) as data:
            if not data:
                raise GatewayError("bad_request", "the body must be the edXML file")
            digest = body_sha256(data)
            if digest != call.param("hash-file").strip().lower():
                raise GatewayError(
                    "bad_request",
                    f"the file's SHA-256 is {digest}, not {PREFIX}hash-file; nothing was sent",
                )
            profile = Profile.STRICT if call.link is None else call.link.profile
            submission = await call.runtime.gateway.submit(
                data, call.principal, profile, expect, origin=call.link, claimed=to
            )
    return {"DocId": submission.answer["package_id"]}


async def received_list(request: web.Request, call: Call) -> Answer:
    kind = vxp.service_kind(call.param("servicetype"))
    vxp.check_message_type(kind, call.param("messagetype"))
    return {"data": await vxp.received(call.runtime.gateway, call.principal.unit, kind)}


async def get_edoc(request: web.Request, call: Call) -> Answer:
    copy = await call.runtime.gateway.inboxes.item(call.principal, call.param("docId"))
    return {"data": base64.b64encode(copy.body).decode("ascii")}


async def download_edoc(request: web.Request, call: Call) -> Answer:
    copy = await call.runtime.gateway.inboxes.item(call.principal, call.param("docId"))
    return web.Response(
        body=copy.body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{copy.delivery_id}.edxml"'},
    )


async def update_status(request: web.Request, call: Call) -> Answer:
    """done delivers the copy and fail offers it again (the inbox acknowledgement); inbox and
    processing change nothing; acceptance and rejection are business answers, which travel
    as signed status packets."""
    status, doc_id = call.param("status"), call.param("docId")
    if status in BUSINESS_ANSWERS:
        raise GatewayError(
            "bad_request",
            f"{status} is a business answer: send a status packet {BUSINESS_ANSWERS[status]} "
            "with sendEdoc (servicetype status)",
        )
    gateway = call.runtime.gateway
    if status in PROGRESS_ONLY:
        await gateway.inboxes.item(call.principal, doc_id)  # it must be the system's copy
        return {"state": "queued"}
    if status not in ("done", "fail"):
        raise GatewayError(
            "bad_request", f"status must be inbox, processing, done or fail, not {status!r}"
        )
    reason = "reported fail through the national-axis façade" if status == "fail" else None
    # The façade's protocol has no signed statement: done is an unsigned acknowledgement
    # (ledgered as such), refused for units whose policy requires a signature.
    state = await gateway.acknowledge(call.principal, doc_id, status == "done", reason)
    return {"state": state}


async def sent_list(request: web.Request, call: Call) -> Answer:
    return {"data": await vxp.sent(call.runtime.gateway, call.principal, call.param("docId"))}


def counter(kind: Kind) -> Handler:
    async def count(request: web.Request, call: Call) -> Answer:
        return {"data": await vxp.count(call.runtime.gateway, call.principal.unit, kind)}

    return count


async def agencies(request: web.Request, call: Call) -> Answer:
    return {"data": vxp.agencies(call.runtime.gateway)}


async def unsupported(request: web.Request) -> web.StreamResponse:
    call = f"{request.method} {request.match_info['name']}"
    return _reply(failure("not_found", f"{call} is not a call this gateway supports"))


# name: (HTTP method, the parameters the call reads, which must be signed, the handler)
CALLS: dict[str, tuple[str, tuple[str, ...], Handler]] = {
    "sendEdoc": ("POST", ("from", "to", "servicetype", "messagetype", "hash-file"), send_edoc),
    "getReceivedEdocList": ("POST", ("servicetype", "messagetype"), received_list),
    "getEdoc": ("POST", ("docId",), get_edoc),
    "downloadEdoc": ("POST", ("docId",), download_edoc),
    "updateStatus": ("POST", ("docId", "status"), update_status),
    "getSentEdocList": ("POST", ("docId",), sent_list),
    "countReceiveEdoc": ("GET", (), counter(Kind.DOCUMENT)),
    "countReceiveStatus": ("GET", (), counter(Kind.STATUS)),
    "getAgenciesList": ("POST", (), agencies),
}


def mount(app: web.Application, settings: Settings) -> None:
    """Add the façade's calls to the application (and make its secrets' key on first use)."""
    app[FACADE] = Facade(open_key(key_file(settings)), settings.vxp.clock_skew)
    for name, (method, needs, handler) in CALLS.items():
        app.router.add_route(method, f"{ROOT}/{name}", endpoint(needs, handler))
    app.router.add_route("*", ROOT + "/{name}", unsupported)
