"""The console's plumbing: templates (Jinja2, autoescaped), the signed-in caller, CSRF checks,
and the refusals and gateway errors of a page answered as HTML pages saying why."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from gateway.api.context import LIMITER, runtime_of
from gateway.console.session import Session, Sessions
from gateway.console.text import age, nfc, when, words
from gateway.errors import GatewayError
from gateway.service.runtime import Runtime
from gateway.service.tokens import Principal, Role

SESSIONS = web.AppKey("console_sessions", Sessions)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    return env


@dataclass
class Caller:
    """A signed-in operator or auditor, and their session."""

    session: Session
    principal: Principal
    runtime: Runtime

    @property
    def operator(self) -> bool:
        return self.principal.role is Role.OPERATOR


class Refused(Exception):
    """A console request that gets a page saying why (status, key of the words)."""

    def __init__(self, status: int, key: str, detail: str = "") -> None:
        super().__init__(key)
        self.status, self.key, self.detail = status, key, detail


def session_of(request: web.Request) -> Session:
    return request.app[SESSIONS].read(request) or Session.fresh()


def render(
    request: web.Request,
    template: str,
    session: Session,
    status: int = 200,
    caller: Caller | None = None,
    **values: Any,
) -> web.Response:
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            t=words(session.lang),
            lang=session.lang,
            csrf=session.csrf,
            caller=caller,
            path=request.path_qs,
            now=datetime.now(UTC),
            **values,
        )
    )
    response = web.Response(text=nfc(page), content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'"
        "; frame-ancestors 'none'"
    )
    request.app[SESSIONS].write(request, response, session)
    return response


async def caller_of(request: web.Request) -> Caller:
    """The signed-in operator or auditor; a browser without a session is sent to sign in."""
    session = session_of(request)
    if session.token is None:
        raise web.HTTPSeeOther("/login", text="")
    runtime = runtime_of(request)
    try:
        principal = await runtime.tokens.authenticate(session.token, datetime.now(UTC))
    except GatewayError as e:
        if e.code == "unauthenticated":
            raise web.HTTPSeeOther("/login", text="") from e
        raise
    if principal.role not in (Role.OPERATOR, Role.AUDITOR):
        raise Refused(403, "unit_token")
    request.app[LIMITER].take(principal.token_id)  # the token's rate, shared with the API
    return Caller(session, principal, runtime)


async def posted(request: web.Request, session: Session) -> dict[str, str]:
    """A posted form (its text fields) whose CSRF field matches ``session``'s."""
    try:
        form = await request.post()
    except (ValueError, LookupError) as e:  # multipart without its boundary, unknown charset
        raise Refused(400, "bad_form") from e
    if not session.check_csrf(form.get("csrf")):
        raise Refused(403, "expired_form")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def form_of(request: web.Request, caller: Caller, *, act: bool = True) -> dict[str, str]:
    """A posted form whose CSRF field matches the session; ``act``: only operators may post."""
    form = await posted(request, caller.session)
    if act and not caller.operator:
        raise Refused(403, "forbidden")
    return form


Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: Page) -> Page:
    """A console handler whose refusals and gateway errors become HTML pages."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as e:
            return render(
                request, "error.html", session_of(request), e.status, key=e.key, detail=e.detail
            )
        except GatewayError as e:
            key = e.code if e.code in ("forbidden", "not_found") else "error"
            return render(
                request, "error.html", session_of(request), e.http_status, key=key, detail=e.message
            )

    return wrapped
