"""Errors over HTTP: every failure is ``application/problem+json`` (RFC 9457) carrying the
catalogue code, so clients branch on ``code``, never on the message."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.db.engine import lost_database
from gateway.errors import CODES, CodeName, GatewayError
from gateway.logs import request_id

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own HTTP errors, mapped to catalogue codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "xml_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def with_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    """``problem`` with the request's id, to quote to an operator, who finds it on every log
    line of the request."""
    rid = request_id.get()
    return {**problem, "request_id": rid} if rid else problem


def problem_response(
    problem: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    headers = {**(headers or {}), "X-Gateway-Error": str(problem["code"])}
    problem = with_request_id(problem)
    return web.Response(
        status=int(problem["status"]),
        body=json.dumps(problem, ensure_ascii=False).encode("utf-8"),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


def problem(code: CodeName, detail: str, **extra: Any) -> web.Response:
    """A problem response for catalogue ``code``; ``extra`` members are added as they are."""
    error = GatewayError(code, detail)
    body = error.to_problem()
    body.update(extra)
    return problem_response(body)


_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id (the caller's ``X-Request-Id`` when it is sane): on each log
    line while it is handled, in its problem answers and in the ``X-Request-Id`` header."""
    given = request.headers.get("X-Request-Id", "")
    # A label for log lines, not a secret: no system call for it on every request.
    rid = given if _GIVEN_ID.fullmatch(given) else f"{random.getrandbits(64):016x}"
    token = request_id.set(rid)
    try:
        response = await handler(request)
    except web.HTTPException as e:
        e.headers["X-Request-Id"] = rid
        raise
    finally:
        request_id.reset(token)
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    return response


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as e:
        body = e.to_problem()
        body.update(getattr(e, "extra", {}))
        if e.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, e)
        retry_after = getattr(e, "retry_after", None)
        return problem_response(
            body, {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "bad_request" if e.status < 500 else "internal_error")
        detail = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        body = {
            "type": f"urn:gateway:error:{code}",
            "title": CODES[code].title if code in CODES else e.reason,
            "status": e.status,
            "code": code,
            "detail": detail,
        }
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem_response(body, headers)
    except Exception as e:
        if lost_database(e):  # a 503 to try again, and one log line rather than a traceback
            cause = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning(
                "%s %s: the database is unavailable: %s", request.method, request.path, cause
            )
            problem = GatewayError("database_unavailable", "the database is unavailable; try again")
            return problem_response(problem.to_problem(), {"Retry-After": "1"})
        log.exception("%s %s failed", request.method, request.path)
        return problem_response(
            {
                "type": "urn:gateway:error:internal_error",
                "title": CODES["internal_error"].title,
                "status": 500,
                "code": "internal_error",
                "detail": "the gateway failed to handle this request; nothing was accepted",
            }
        )
