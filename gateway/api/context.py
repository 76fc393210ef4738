"""What every handler needs: the running gateway and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from gateway.api.limits import RateLimiter, Uploads
from gateway.api.problems import Handler
from gateway.api.tls import check_client_certificate, client_certificate
from gateway.errors import GatewayError
from gateway.service.certificates import Certificates
from gateway.service.runtime import Runtime
from gateway.service.tokens import Principal, Role


@dataclass
class RuntimeSlot:
    """The running gateway once it has started; until then, why it has not yet (the database
    or the broker does not answer: requests get that error, 503)."""

    runtime: Runtime | None = None
    waiting: GatewayError | None = None


class CertificatesSlot:
    """The certificates the alerts watch, made on first use (the runtime starts after the
    application is built)."""

    def __init__(self) -> None:
        self.value: Certificates | None = None

    def of(self, runtime: Runtime) -> Certificates:
        if self.value is None:
            self.value = Certificates(runtime.reloader.sources.trust, runtime.settings.keys)
        return self.value


CERTIFICATES = web.AppKey("certificates", CertificatesSlot)


RUNTIME = web.AppKey("runtime", RuntimeSlot)
LIMITER = web.AppKey("limiter", RateLimiter)
UPLOADS = web.AppKey("uploads", Uploads)
PRINCIPAL = web.RequestKey("principal", Principal)
OUTCOME = web.RequestKey("package_outcome", str)  # accepted | replayed, for the metrics

# Paths anyone may read: probes, metrics and the API description.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})


def runtime_of(request: web.Request) -> Runtime:
    slot = request.app[RUNTIME]
    if slot.runtime is None:
        waiting = slot.waiting or GatewayError("database_unavailable", "not started")
        raise GatewayError(waiting.code, f"the gateway is starting: {waiting.message}")
    return slot.runtime


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
    runtime = runtime_of(request)
    principal = await runtime.tokens.authenticate(token.strip(), datetime.now(UTC))
    cert = client_certificate(request)
    if cert is not None:
        check_client_certificate(runtime.gateway.trust, principal, cert)
    request.app[LIMITER].take(principal.token_id)
    request[PRINCIPAL] = principal
    return await handler(request)
