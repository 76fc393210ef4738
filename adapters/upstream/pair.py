"""Two provinces' gateways on one machine, each with its own directory, PKI, database and
bus, each the other's upstream link: what ``gateway demo --federated`` runs and what the
federation tests start. Each trusts both provinces' CAs; each has issued the other a façade
secret, which the other's link uses."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway.api.app import build_app
from gateway.bus import RetryPolicy
from gateway.config import (
    BusSettings,
    FederationSettings,
    LedgerSettings,
    Secret,
    Settings,
    VxpSettings,
)
from gateway.db.engine import open_engine
from gateway.db.migrate import upgrade
from gateway.directory import load_directory
from gateway.service.reload import WATCH_SECONDS
from gateway.service.runtime import RELAY_SECONDS, SWEEP_SECONDS, Runtime, start_runtime
from gateway.service.vxp_secrets import issue_secret, key_file, open_key
from gateway.trust import KeysLayout, init_keys


@dataclass(frozen=True)
class ProvinceSpec:
    """One province: its code (``H07``), its directory's text and where its data live."""

    code: str
    directory: str  # the directory CSV
    amqp_url: str | None = None
    database_url: str | None = None
    namespace: str = "gw"

    @property
    def system_id(self) -> str:
        """The province gateway's systemId at the other's façade: its top unit's code."""
        return f"000.00.00.{self.code}"


@dataclass
class Province:
    spec: ProvinceSpec
    home: Path
    settings: Settings
    port: int
    runtime: Runtime | None = None
    runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys(self) -> Path:
        assert self.settings.keys is not None
        return self.settings.keys

    @property
    def live(self) -> Runtime:
        assert self.runtime is not None, f"province {self.spec.code} is stopped"
        return self.runtime

    async def start(
        self,
        policy: RetryPolicy | None = None,
        intervals: tuple[float, float, float] = (RELAY_SECONDS, SWEEP_SECONDS, WATCH_SECONDS),
    ) -> None:
        """Start the gateway (again) on its own port, with its database and bus as they are."""
        self.runtime = await start_runtime(
            self.settings, policy=policy, intervals=intervals, say=lambda _: None
        )
        self.runner = web.AppRunner(build_app(self.runtime), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self, grace: float = 2.0) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.runtime is not None:
            await self.runtime.stop(grace)
            self.runtime = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _province(spec: ProvinceSpec, home: Path, origin: str) -> Province:
    home.mkdir(parents=True, exist_ok=True)
    directory = home / "directory.csv"
    directory.write_text(spec.directory, encoding="utf-8")
    keys = home / "keys"
    init_keys(keys, load_directory(directory))
    settings = Settings(
        home=home / "var",
        amqp_url=Secret(spec.amqp_url) if spec.amqp_url else None,
        database_url=Secret(spec.database_url) if spec.database_url else None,
        directory=directory,
        keys=keys,
        trust=home / "trust-all.pem",
        crl=home / "crl-all.pem",
        bus=BusSettings(namespace=spec.namespace, prefetch=4),
        ledger=LedgerSettings(origin=origin, checkpoint_entries=5, checkpoint_seconds=1),
        vxp=VxpSettings(enabled=True),
        federation=FederationSettings(links=home / "links.toml"),
    )
    return Province(spec, home, settings, free_port())


async def _issue(province: Province, system_id: str) -> str:
    """A façade secret for the other province's gateway, in this one's database."""
    engine = open_engine(province.settings)
    try:
        await upgrade(engine)
        issued = await issue_secret(engine, open_key(key_file(province.settings)), system_id)
    finally:
        await engine.dispose()
    return issued.secret


def _link_toml(name: str, other: Province, own: ProvinceSpec, secret: str, poll: float) -> str:
    return "\n".join(
        [
            "[[link]]",
            f"name = {json.dumps(name)}",
            f"url = {json.dumps(other.url + '/vxp')}",
            f"system_id = {json.dumps(own.system_id)}",
            f"secret = {json.dumps(secret)}",
            f"serves = {json.dumps(['*.' + other.spec.code])}",
            'profile = "strict"',
            f"poll = {poll}",
            f"peer = {json.dumps(other.spec.system_id)}",
            "",
        ]
    )


async def prepare_pair(
    folder: Path, specs: Sequence[ProvinceSpec], *, poll: float = 1.0
) -> tuple[Province, Province]:
    """Lay out two provinces under ``folder`` (``<code>/``): directories, PKIs, the trust
    bundles and CRLs of both CAs, the façade secrets each issues the other, and each one's
    link to the other (named after the other's province code, in lower case). Nothing is
    started."""
    a, b = (_province(s, folder / s.code, f"gateway.{s.code.lower()}/ledger") for s in specs)
    layouts = [KeysLayout(p.keys) for p in (a, b)]
    bundle = b"".join(layout.trust_pem.read_bytes() for layout in layouts)
    crls = b"".join(layout.crl_pem.read_bytes() for layout in layouts)
    for p in (a, b):
        (p.home / "trust-all.pem").write_bytes(bundle)
        (p.home / "crl-all.pem").write_bytes(crls)
    secret_at_b = await _issue(b, a.spec.system_id)  # what a's link presents to b
    secret_at_a = await _issue(a, b.spec.system_id)
    for own, other, secret in ((a, b, secret_at_b), (b, a, secret_at_a)):
        link = _link_toml(other.spec.code.lower(), other, own.spec, secret, poll)
        (own.home / "links.toml").write_text(link, encoding="utf-8")
    return a, b


def province_directory(code: str, units: Sequence[tuple[str, str, str, int]]) -> str:
    """A small directory CSV: (code suffix before the province code, name, parent suffix,
    level) per unit, every unit a pull unit."""
    lines = ["code,name,parent_code,level,delivery,endpoint,status"]
    for suffix, name, parent, level in units:
        parent_code = f"{parent}.{code}" if parent else ""
        lines.append(f"{suffix}.{code},{name},{parent_code},{level},pull,,active")
    return "\n".join(lines) + "\n"
