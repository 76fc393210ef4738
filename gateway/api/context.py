"""What every handler needs: the running gateway and the authenticated caller."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from gateway.api.problems import Handler
from gateway.errors import GatewayError
from gateway.service.runtime import Runtime
from gateway.service.tokens import Principal, Role

RUNTIME = web.AppKey("runtime", Runtime)
PRINCIPAL = web.RequestKey("principal", Principal)
OUTCOME = web.RequestKey("package_outcome", str)  # accepted | replayed, for the metrics

# Paths anyone may read: probes, metrics and the API description.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require_role(request: web.Request, *roles: Role) -> Principal:
    principal = principal_of(request)
    if principal.role not in roles:
        raise GatewayError(
            "forbidden", f"this needs the role {' or '.join(roles)}, not {principal.role}"
        )
    return principal


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or not request.path.startswith("/v1/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GatewayError("unauthenticated", "send Authorization: Bearer <token>")
    checker = runtime_of(request).tokens
    request[PRINCIPAL] = await checker.authenticate(token.strip(), datetime.now(UTC))
    return await handler(request)
