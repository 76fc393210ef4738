"""Routes for operators: reload the directory and trust files, change units, redrive copies,
revoke tokens. Each action is a ledger event naming the operator's token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.context import CERTIFICATES, require_role, runtime_of
from gateway.api.params import json_object, json_response
from gateway.api.problems import problem
from gateway.directory.edit import FIELDS
from gateway.errors import GatewayError
from gateway.service.actions import Actor
from gateway.service.admin import UnitChanged
from gateway.service.alerts import current_alerts, watched_certificates
from gateway.service.tokens import Role
from gateway.service.views import backlog_view

routes = web.RouteTableDef()


def _operator(request: web.Request) -> Actor:
    return Actor.of(require_role(request, Role.OPERATOR))


@routes.post("/v1/admin/reload")
async def reload(request: web.Request) -> web.Response:
    """Read the directory, trust bundle and CRL again; 422 ``reload_refused`` (nothing
    changed) when one of them does not pass its checks."""
    result = await runtime_of(request).admin.reload(_operator(request))
    if not result.ok:
        return problem("reload_refused", result.error or "", reload=result.to_json())
    return json_response(result.to_json())


@routes.get("/v1/admin/reload")
async def last_reload(request: web.Request) -> web.Response:
    require_role(request, Role.OPERATOR)
    reloader = runtime_of(request).reloader
    last = reloader.last
    return json_response({"last": last.to_json() if last else None, "counts": reloader.counts})


def _unit_values(body: dict[str, Any]) -> dict[str, str]:
    """The unit fields of a JSON body as the directory file writes them."""
    values: dict[str, str] = {}
    for name in FIELDS:
        if name not in body:
            continue
        value = body[name]
        if name == "cert_sha256" and isinstance(value, list):
            value = ";".join(str(v) for v in value)
        if value is None:
            value = ""
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise GatewayError("bad_request", f"{name} must be a string")
        values[name] = str(value)
    unknown = sorted(set(body) - set(FIELDS) - {"code"})
    if unknown:
        raise GatewayError("bad_request", f"unknown unit fields: {', '.join(unknown)}")
    return values


def _changed(done: UnitChanged, status: int = 200) -> web.Response:
    return json_response(
        {
            "unit": done.change.after.as_dict(),
            "changed": done.change.fields,
            "reload": done.reload.to_json() if done.reload else None,
        },
        status,
    )


@routes.post("/v1/admin/units")
async def add_unit(request: web.Request) -> web.Response:
    actor = _operator(request)
    body = await json_object(request)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise GatewayError("bad_request", "code (the unit's OrganId) is required")
    values = {"status": "active"} | _unit_values(body)
    admin = runtime_of(request).admin
    return _changed(await admin.change_unit(actor, "unit_add", code, values, create=True), 201)


@routes.patch("/v1/admin/units/{code}")
async def update_unit(request: web.Request) -> web.Response:
    actor = _operator(request)
    values = _unit_values(await json_object(request))
    if not values:
        raise GatewayError("bad_request", f"give at least one of {', '.join(FIELDS)}")
    code = request.match_info["code"]
    return _changed(await runtime_of(request).admin.change_unit(actor, "unit_update", code, values))


async def _set_status(request: web.Request, action: str, status: str) -> web.Response:
    actor = _operator(request)
    code = request.match_info["code"]
    admin = runtime_of(request).admin
    return _changed(await admin.change_unit(actor, action, code, {"status": status}))


@routes.post("/v1/admin/units/{code}/suspend")
async def suspend_unit(request: web.Request) -> web.Response:
    return await _set_status(request, "unit_suspend", "suspended")


@routes.post("/v1/admin/units/{code}/resume")
async def resume_unit(request: web.Request) -> web.Response:
    return await _set_status(request, "unit_resume", "active")


@routes.get("/v1/admin/backlog")
async def backlog(request: web.Request) -> web.Response:
    """Per unit: copies waiting, the oldest one's age, retrying, expired, dead; push units'
    last delivery and failure; totals. ``?unit=CODE`` for one unit (operators, auditors)."""
    require_role(request, Role.OPERATOR, Role.AUDITOR)
    runtime = runtime_of(request)
    unit = request.query.get("unit") or None
    if unit is not None and unit not in runtime.gateway.directory:
        raise GatewayError("not_found", f"no unit {unit}")
    view = await backlog_view(runtime.ledger.engine, runtime.gateway.directory, unit)
    return json_response(view)


@routes.get("/v1/alerts")
async def alerts(request: web.Request) -> web.Response:
    """What needs looking at now (operators, auditors): push endpoints failing, copies
    waiting too long, dead letters, certificates expiring, an old checkpoint; thresholds are
    the GATEWAY_ALERTS_* settings."""
    require_role(request, Role.OPERATOR, Role.AUDITOR)
    runtime = runtime_of(request)
    certificates = watched_certificates(request.app[CERTIFICATES].of(runtime), runtime)
    found, _ = await current_alerts(runtime, certificates)
    return json_response({"alerts": [a.to_json() for a in found]})


@routes.post("/v1/admin/redrive")
async def redrive(request: web.Request) -> web.Response:
    actor = _operator(request)
    body = await json_object(request)
    unit = body.get("unit")
    gateway = runtime_of(request).gateway
    if not isinstance(unit, str) or (
        unit not in gateway.directory and gateway.links.of_queue(unit) is None
    ):
        raise GatewayError(
            "bad_request", "unit must be a unit code of the directory, or link:<name>"
        )
    ids = body.get("ids")
    if body.get("all") is True:
        ids = None
    elif not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise GatewayError("bad_request", 'give "ids": [delivery ids] or "all": true')
    count = await runtime_of(request).admin.redrive(actor, unit, ids)
    return json_response({"unit": unit, "redriven": count})


@routes.post("/v1/admin/tokens/{token_id}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    actor = _operator(request)
    token_id = request.match_info["token_id"]
    count = await runtime_of(request).admin.revoke_token(actor, token_id)
    return json_response({"token_id": token_id, "revoked": count})
