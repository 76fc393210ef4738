"""HTTPS with mutual TLS against a running (embedded) gateway: unit certificates from the
trust bundle are accepted and bound to the token's unit; others never get in. And the
per-token rate limit over real HTTP."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.api.app import build_app
from gateway.api.tls import server_ssl_context
from gateway.config import ApiSettings, Settings
from gateway.directory import load_directory
from gateway.service.runtime import start_runtime
from gateway.service.tokens import Role, issue_token
from gateway.trust import KeysLayout, init_keys

A, B = "000.00.05.H07", "000.00.06.H07"
DIRECTORY = f"""\
code,name,parent_code,level,delivery,endpoint,status
000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active
{A},Sở Nội vụ,000.00.00.H07,2,pull,,active
{B},Sở Tài chính,000.00.00.H07,2,pull,,active
"""


def self_signed(folder: Path, name: str, *, san_ip: bool = False) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if san_ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Tls:
    url: str
    keys: Path
    server_cert: Path
    tokens: dict[str, str]
    folder: Path

    def client_context(self, unit: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.server_cert))
        if unit is not None:
            layout = self.keys / "units" / unit
            context.load_cert_chain(str(layout / "cert.pem"), str(layout / "key.pem"))
        return context

    async def get(self, path: str, token: str, unit: str | None) -> int:
        connector = aiohttp.TCPConnector(ssl=self.client_context(unit))
        async with aiohttp.ClientSession(connector=connector) as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(self.url + path, headers=headers) as response:
                return response.status


async def start(tmp_path: Path, mode: str) -> AsyncIterator[Tls]:
    directory = tmp_path / "units.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    keys = tmp_path / "keys"
    init_keys(keys, load_directory(directory))
    cert, key = self_signed(tmp_path, "server", san_ip=True)
    settings = Settings(
        home=tmp_path / "var",
        directory=directory,
        keys=keys,
        api=ApiSettings(tls_cert=cert, tls_key=key, client_certs=mode, rate=1, burst=5),
    )
    runtime = await start_runtime(settings)
    runner = web.AppRunner(build_app(runtime))
    await runner.setup()
    context = server_ssl_context(settings, str(KeysLayout(keys).trust_pem))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tokens = {
        unit: (await issue_token(runtime.ledger.engine, unit, Role.UNIT)).token for unit in (A, B)
    }
    try:
        yield Tls(f"https://127.0.0.1:{port}", keys, cert, tokens, tmp_path)
    finally:
        await runner.cleanup()
        await runtime.stop(grace=1)


@pytest.fixture
async def optional_mtls(tmp_path: Path) -> AsyncIterator[Tls]:
    async for tls in start(tmp_path, "optional"):
        yield tls


@pytest.fixture
async def required_mtls(tmp_path: Path) -> AsyncIterator[Tls]:
    async for tls in start(tmp_path, "required"):
        yield tls


async def test_unit_certificate_matching_the_token_is_accepted(optional_mtls: Tls) -> None:
    assert await optional_mtls.get("/v1/inbox", optional_mtls.tokens[A], A) == 200


async def test_certificate_of_another_unit_is_refused(optional_mtls: Tls) -> None:
    assert await optional_mtls.get("/v1/inbox", optional_mtls.tokens[A], B) == 403


async def test_optional_mode_still_serves_token_only_clients(optional_mtls: Tls) -> None:
    assert await optional_mtls.get("/v1/inbox", optional_mtls.tokens[A], None) == 200


async def test_certificate_outside_the_trust_bundle_never_gets_in(optional_mtls: Tls) -> None:
    cert, key = self_signed(optional_mtls.folder, "intruder")
    context = optional_mtls.client_context(None)
    context.load_cert_chain(str(cert), str(key))
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(optional_mtls.url + "/healthz") as response:
                await response.read()


async def test_required_mode_refuses_clients_without_a_certificate(required_mtls: Tls) -> None:
    with pytest.raises(aiohttp.ClientError):
        await required_mtls.get("/healthz", required_mtls.tokens[A], None)
    assert await required_mtls.get("/v1/inbox", required_mtls.tokens[B], B) == 200


async def test_a_token_over_its_rate_is_told_to_wait(optional_mtls: Tls) -> None:
    """Burst 5, then one a second: eight requests on one connection meet the limit."""
    connector = aiohttp.TCPConnector(ssl=optional_mtls.client_context(A))
    headers = {"Authorization": f"Bearer {optional_mtls.tokens[A]}"}
    statuses, waits = [], []
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        for _ in range(8):
            async with session.get(optional_mtls.url + "/v1/inbox") as response:
                statuses.append(response.status)
                waits.append(response.headers.get("Retry-After"))
    assert statuses[:5] == [200] * 5
    refused = statuses.index(429)
    assert waits[refused] is not None and int(waits[refused]) >= 1
    assert await optional_mtls.get("/v1/inbox", optional_mtls.tokens[B], B) == 200


def test_the_push_client_certificate_is_loaded_or_refused_clearly(tmp_path: Path) -> None:
    from gateway.config import PushSettings
    from gateway.errors import ConfigError
    from gateway.service.delivery import client_cert

    assert client_cert(PushSettings()) is None
    cert, key = self_signed(tmp_path, "gateway-push")
    context = client_cert(PushSettings(client_cert=cert, client_key=key))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConfigError, match="push client certificate"):
        client_cert(PushSettings(client_cert=tmp_path / "missing.pem", client_key=key))
