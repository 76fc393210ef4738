"""What handlers read from a request and how they answer JSON: query integers within range and
JSON bodies, each refused with ``bad_request`` and a message saying what was expected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gateway.api.context import UPLOADS
from gateway.errors import GatewayError

# The largest integer a query may carry: a database BIGINT (cursors, sequence numbers, sizes).
MAX_INT = 2**63 - 1


def query_int(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    low: int = 0,
    high: int = MAX_INT,
) -> int:
    """The integer query parameter ``name`` in low..high (``default`` when absent; required
    when there is none)."""
    value = request.query.get(name)
    if value is None or value == "":
        if default is None:
            raise GatewayError("bad_request", f"the query parameter {name} is required")
        return default
    try:
        number = int(value)
    except ValueError as e:
        raise GatewayError("bad_request", f"{name} must be an integer") from e
    if not low <= number <= high:
        raise GatewayError("bad_request", f"{name} must be {low}..{high}")
    return number


# The largest JSON body a route takes (an acknowledgement, a unit, a list of delivery ids).
MAX_JSON_BYTES = 1024 * 1024


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object: at most MAX_JSON_BYTES, received within the body
    timeout (GATEWAY_API_BODY_TIMEOUT), not too deeply nested to read."""
    declared = request.content_length
    if declared is not None and declared > MAX_JSON_BYTES:
        raise GatewayError("body_too_large", f"a JSON body is at most {MAX_JSON_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    seconds = request.app[UPLOADS].timeout
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.read(64 * 1024):
                size += len(chunk)
                if size > MAX_JSON_BYTES:
                    raise GatewayError(
                        "body_too_large", f"a JSON body is at most {MAX_JSON_BYTES} bytes"
                    )
                chunks.append(chunk)
    except TimeoutError as e:
        raise GatewayError(
            "request_timeout", f"the body did not arrive within {seconds:g} s"
        ) from e
    data = b"".join(chunks)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise GatewayError("bad_request", "the body must be a JSON object") from e
    if not isinstance(body, dict):
        raise GatewayError("bad_request", "the body must be a JSON object")
    return body


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))
