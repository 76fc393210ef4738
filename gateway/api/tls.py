"""HTTPS and optional mutual TLS: the listener's certificate, and client certificates checked
against the government trust bundle (chain, validity, revocation) and bound to the token."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

from aiohttp import web
from cryptography import x509

from gateway.config import Settings
from gateway.errors import ConfigError, GatewayError, PackageRejected
from gateway.service.tokens import Principal, Role
from gateway.trust import TrustStore, organ_ids

CLIENT_CERT_MODES = {
    "off": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_ssl_context(settings: Settings, trust_bundle: str | None) -> ssl.SSLContext | None:
    """The listener's TLS context, or None for plain HTTP (no GATEWAY_API_TLS_CERT)."""
    api = settings.api
    if api.client_certs not in CLIENT_CERT_MODES:
        raise ConfigError(
            f"GATEWAY_API_CLIENT_CERTS={api.client_certs!r}: use off, optional or required"
        )
    if api.tls_cert is None:
        if api.client_certs != "off":
            raise ConfigError("GATEWAY_API_CLIENT_CERTS needs GATEWAY_API_TLS_CERT (HTTPS)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(api.tls_cert), str(api.tls_key) if api.tls_key else None)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"GATEWAY_API_TLS_CERT/GATEWAY_API_TLS_KEY: cannot load: {e}") from e
    context.verify_mode = CLIENT_CERT_MODES[api.client_certs]
    if api.client_certs != "off":
        if trust_bundle is None:
            raise ConfigError("mutual TLS needs the trust bundle (GATEWAY_TRUST or GATEWAY_KEYS)")
        context.load_verify_locations(cafile=trust_bundle)
    return context


def client_certificate(request: web.Request) -> x509.Certificate | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def check_client_certificate(
    trust: TrustStore, principal: Principal, cert: x509.Certificate
) -> None:
    """A client certificate must be trusted now (revocation included), and a unit token may
    only be used with a certificate of its own unit."""
    try:
        trust.check_signer(cert, datetime.now(UTC))
    except PackageRejected as e:
        raise GatewayError("forbidden", f"client certificate refused: {e.code}: {e.message}") from e
    named = organ_ids(cert)
    if principal.role is Role.UNIT and principal.unit not in named:
        raise GatewayError(
            "forbidden",
            f"the client certificate names {', '.join(named) or 'no unit'}, "
            f"the token speaks for {principal.unit}",
        )
