"""The console's forms (POST): sign in and out, the language, and the operators' actions
(redrive, add, suspend and resume a unit), each through the same service functions as the
HTTP API, so each is a ledger event naming the operator's token. Every form carries the
session's CSRF secret; an auditor's post is refused with 403."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from gateway.api.context import runtime_of
from gateway.console.session import Session
from gateway.console.web import (
    SESSIONS,
    caller_of,
    form_of,
    page,
    posted,
    render,
    session_of,
)
from gateway.errors import GatewayError
from gateway.ledger import VerifyReport
from gateway.service.actions import Actor
from gateway.service.tokens import Role

log = logging.getLogger(__name__)
LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\]*")
routes = web.RouteTableDef()


def _back(request: web.Request, session: Session, to: str) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": to})
    request.app[SESSIONS].write(request, response, session)
    return response


@routes.get("/login")
@page
async def login_page(request: web.Request) -> web.StreamResponse:
    return render(request, "login.html", session_of(request))


@routes.post("/login")
@page
async def login(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    form = await posted(request, session)
    token = form.get("token", "").strip()
    try:
        principal = await runtime_of(request).tokens.authenticate(token, datetime.now(UTC))
    except GatewayError as e:
        if e.code != "unauthenticated":
            raise
        return render(request, "login.html", session, 401, error="bad_token")
    if principal.role not in (Role.OPERATOR, Role.AUDITOR):
        return render(request, "login.html", session, 403, error="unit_token")
    return _back(request, session.signed_in(token), "/")


@routes.post("/logout")
@page
async def logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    await posted(request, session)  # its CSRF field
    return _back(request, Session.fresh(session.lang), "/login")


@routes.post("/lang")
@page
async def language(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    form = await posted(request, session)
    back = form.get("back")
    # back to the page it was asked from: a path of this site, never another's ("//host",
    # "/\\host" are other sites to a browser)
    to = back if back is not None and LOCAL_PATH.fullmatch(back) else "/"
    return _back(request, session.speaking(form.get("lang", "vi")), to)


@routes.post("/dead/redrive")
@page
async def redrive(request: web.Request) -> web.StreamResponse:
    """Redrive the chosen copies (``pick``: ``UNIT DELIVERY_ID``) or every stopped copy of
    ``all`` (a unit code): first a page to confirm, then, with ``confirm``, the redrive."""
    caller = await caller_of(request)
    form = await form_of(request, caller)
    data = await request.post()
    picked: dict[str, list[str]] = {}
    for value in data.getall("pick", []):
        unit, _, delivery_id = str(value).partition(" ")
        if unit and delivery_id:
            picked.setdefault(unit, []).append(delivery_id)
    everything = form.get("all") or None
    directory = caller.runtime.gateway.directory
    for unit in [*picked, *([everything] if everything else [])]:
        if unit not in directory:
            raise GatewayError("bad_request", f"no unit {unit}")
    if not picked and not everything:
        raise GatewayError("bad_request", "choose copies to redrive, or a unit's all")
    if not form.get("confirm"):
        return render(
            request,
            "confirm.html",
            caller.session,
            caller=caller,
            picked=picked,
            everything=everything,
        )
    actor = Actor.of(caller.principal)
    admin = caller.runtime.admin
    count = 0
    if everything:
        count += await admin.redrive(actor, everything, None)
    for unit, ids in picked.items():
        if unit != everything:
            count += await admin.redrive(actor, unit, ids)
    return _back(request, caller.session, "/dead?" + urlencode({"redriven": count}))


UNIT_FIELDS = ("name", "parent_code", "level", "delivery", "endpoint")


@routes.post("/units")
@page
async def add_unit(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    form = await form_of(request, caller)
    code = form.get("code", "").strip()
    if not code:
        raise GatewayError("bad_request", "code (the unit's OrganId) is required")
    values = {"status": "active"} | {k: form[k].strip() for k in UNIT_FIELDS if form.get(k)}
    admin = caller.runtime.admin
    await admin.change_unit(Actor.of(caller.principal), "unit_add", code, values, create=True)
    return _back(request, caller.session, "/units?" + urlencode({"done": f"+ {code}"}))


async def _set_status(request: web.Request, action: str, status: str) -> web.StreamResponse:
    caller = await caller_of(request)
    await form_of(request, caller)
    code = request.match_info["code"]
    admin = caller.runtime.admin
    await admin.change_unit(Actor.of(caller.principal), action, code, {"status": status})
    return _back(request, caller.session, "/units?" + urlencode({"done": f"{status} {code}"}))


@routes.post("/units/{code}/suspend")
@page
async def suspend_unit(request: web.Request) -> web.StreamResponse:
    return await _set_status(request, "unit_suspend", "suspended")


@routes.post("/units/{code}/resume")
@page
async def resume_unit(request: web.Request) -> web.StreamResponse:
    return await _set_status(request, "unit_resume", "active")


@dataclass
class VerifyRun:
    """The latest whole-ledger verification started from the console, in this process."""

    started_at: datetime | None = None
    by: str | None = None
    report: VerifyReport | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


VERIFY = web.AppKey("console_verify", VerifyRun)


@routes.post("/ledger/verify")
@page
async def verify(request: web.Request) -> web.StreamResponse:
    """Recompute the whole tree and check every checkpoint, in the background (operators and
    auditors: it changes nothing); the ledger page shows its progress and result."""
    caller = await caller_of(request)
    await form_of(request, caller, act=False)
    run = request.app[VERIFY]
    if not run.running:
        ledger = caller.runtime.ledger

        async def check() -> None:
            try:
                run.report = await ledger.verify(ledger.verifier)
            except GatewayError as e:
                run.error = e.message
            except Exception as e:  # shown on the page; the console goes on
                log.exception("the ledger verification failed")
                run.error = repr(e)

        run.started_at, run.by = datetime.now(UTC), caller.principal.token_id
        run.report = run.error = None
        run.task = asyncio.create_task(check(), name="console-verify")
    return _back(request, caller.session, "/ledger")


async def stop_verify(app: web.Application) -> None:
    task = app[VERIFY].task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
