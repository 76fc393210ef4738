"""The gateway's settings: one frozen object, read once at start from an optional TOML file and
``GATEWAY_*`` environment variables (which win). Every problem names the variable at fault.

Variables are ``GATEWAY_<SECTION>_<NAME>`` for sectioned settings (``GATEWAY_BUS_TTL``) and
``GATEWAY_<NAME>`` for the top-level ones (``GATEWAY_AMQP_URL``, ``GATEWAY_DATABASE_URL``).
The TOML file (``GATEWAY_CONFIG``) uses the same names in lower case, sections as tables.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from gateway.errors import ConfigError


class Secret(str):
    """A string whose repr hides it (database URLs with passwords, tokens)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('**********')"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class EnvelopeSettings:
    max_bytes: int = 100 * 1024 * 1024  # checked before parsing (a 50 MiB scan is ~70 MB)
    max_depth: int = 64  # edXML needs < 12; anything deeper is hostile
    max_nodes: int = 200_000  # elements + attributes + text nodes


@dataclass(frozen=True)
class BusSettings:
    # Delays in seconds before retry 1, 2, 3...; the last one repeats.
    retry_schedule: tuple[int, ...] = (30, 120, 600, 3600)
    ttl: int = 24 * 3600  # seconds a delivery may stay undelivered before it expires
    # Urgent letters (Priority >= 1) expire sooner and retry faster.
    urgent_ttl: int = 4 * 3600
    urgent_retry_schedule: tuple[int, ...] = (10, 30, 120, 600)
    max_attempts: int = 48
    claim_check_bytes: int = 1024 * 1024  # bodies above this travel by reference
    namespace: str = "gw"  # prefix of every queue and exchange name (gw.unit.<OrganId>)
    publish_window: int = 256  # unconfirmed publishes in flight at once
    publish_timeout: int = 60  # seconds a publish keeps retrying through a broker outage
    prefetch: int = 16  # deliveries a consumer handles at once per unit
    lease: int = 60  # LocalBus: seconds before an unacknowledged delivery is handed out again


@dataclass(frozen=True)
class LedgerSettings:
    origin: str = "gateway.local/ledger"  # first line of every checkpoint
    checkpoint_entries: int = 1000  # sign a checkpoint at least every N entries...
    checkpoint_seconds: int = 60  # ...or every T seconds
    # Witnesses whose cosignatures of checkpoints are accepted: C2SP verifier keys
    # (name+id+base64), comma-separated.
    witnesses: tuple[str, ...] = ()
    # Units that must acknowledge with a signed statement (OrganIds, or * for every unit).
    signed_ack: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiSettings:
    rate: int = 50  # requests per second a token may make on average...
    burst: int = 200  # ...and at once
    tls_cert: Path | None = None  # PEM certificate (chain) of the HTTPS listener
    tls_key: Path | None = None  # its private key
    # Client certificates (mutual TLS) checked against the trust bundle: off, optional or
    # required. A unit token used with a certificate must match the certificate's OrganId.
    client_certs: str = "off"
    # Seconds a checked token is trusted without reading it again: the longest a token
    # revoked by another process (the CLI, another worker) stays usable.
    token_cache: int = 10
    # Seconds a connection may take to send a request's headers, counted from its opening or
    # from the end of its previous request: a client that trickles them (or sends nothing) is
    # disconnected; an idle kept-alive connection is closed after as long.
    header_timeout: int = 30
    # Seconds a client has to send a whole request body (a slow or stalled upload is refused
    # with 408 request_timeout, its connection closed).
    body_timeout: int = 300
    # Packages being received or checked at once, per token and in all: more are refused
    # with 429 rate_limited until one is done.
    uploads_per_token: int = 64
    uploads: int = 256
    # Open connections one client address may hold, per gateway process (0: no cap); more
    # are closed at once. Behind a reverse proxy every client has the proxy's address.
    connections_per_address: int = 256
    # Seconds the gateway holds a long poll of an empty inbox (``GET /v1/inbox?wait=``) at
    # most, whatever the client asked (0: never waits). Under a reverse proxy's idle timeout.
    long_poll: int = 30


@dataclass(frozen=True)
class PushSettings:
    """How the gateway calls push units' webhooks."""

    # Hours a webhook secret still signs after it is rotated, beside the new one.
    secret_overlap: int = 24
    # A TLS client certificate (PEM, with its key) the gateway presents to every webhook.
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class VxpSettings:
    """The national-axis façade (docs/national-axis.md): off unless asked for, so that a
    gateway serves only its own API by default."""

    enabled: bool = False  # mount the façade at /vxp/ (gateway serve)
    # Seconds a request's XroadVnpt-timestamp may be from the gateway's clock; a signed
    # request is remembered for as long, so that the same one again is refused as a replay.
    clock_skew: int = 300
    # The key that encrypts the systems' secrets at rest (created on first use, mode 0600);
    # None: <home>/vxp-secrets.key. Every gateway process sharing a database needs the same.
    key_file: Path | None = None


@dataclass(frozen=True)
class FederationSettings:
    """Upstream links (docs/federation.md): none unless a links file is given."""

    # A TOML file of [[link]] tables: each an upstream endpoint, our systemId and secret
    # there, the OrganId patterns it serves, its profile and its poll interval.
    links: Path | None = None


@dataclass(frozen=True)
class AlertSettings:
    """When the console and ``GET /v1/alerts`` raise an alert (docs/console.md)."""

    push_failing_minutes: int = 15  # a push endpoint failing for longer than this
    waiting_minutes: int = 60  # a copy waiting undelivered for longer than this
    cert_days: int = 30  # a certificate expiring within this many days
    checkpoint_minutes: int = 10  # an entry waiting longer for a checkpoint to cover it


@dataclass(frozen=True)
class LogSettings:
    format: str = "text"  # text | json (one JSON object per line)
    level: str = "info"  # debug | info | warning | error

    def __post_init__(self) -> None:
        if self.format not in ("text", "json"):
            raise ConfigError(f"GATEWAY_LOG_FORMAT must be text or json, got {self.format!r}")
        if self.level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"GATEWAY_LOG_LEVEL must be debug, info, warning or error, got {self.level!r}"
            )


@dataclass(frozen=True)
class Settings:
    home: Path = Path("var")
    amqp_url: Secret | None = None
    database_url: Secret | None = None
    directory: Path | None = None  # None: the bundled sample province
    keys: Path | None = None  # development PKI folder (gateway keys init)
    trust: Path | None = None  # CA bundle (PEM); defaults to <keys>/trust.pem
    crl: Path | None = None  # CRL (PEM or DER); defaults to <keys>/crl.pem
    # Seconds to reach the broker or the database, and for one operation on them: past
    # these, bus_unavailable or database_unavailable instead of a silent wait.
    connect_timeout: int = 5
    operation_timeout: int = 30
    envelope: EnvelopeSettings = field(default_factory=EnvelopeSettings)
    bus: BusSettings = field(default_factory=BusSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    push: PushSettings = field(default_factory=PushSettings)
    log: LogSettings = field(default_factory=LogSettings)
    vxp: VxpSettings = field(default_factory=VxpSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def __post_init__(self) -> None:
        if self.amqp_url is not None:
            from gateway.bus.address import broker_hosts  # the bus owns the URL's syntax

            try:
                broker_hosts(self.amqp_url.reveal())
            except ValueError as e:  # the message never repeats the URL (it has a password)
                raise ConfigError(f"GATEWAY_AMQP_URL: {e}") from e


def _convert(name: str, raw: Any, kind: Any) -> Any:
    text = str(raw).strip()
    try:
        if kind in (bool, "bool"):
            return _boolean(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (Path, "Path") or kind == Path | None:
            return Path(text)
        if kind == Secret | None:
            return Secret(text)
        if kind == tuple[int, ...]:
            items = raw if isinstance(raw, list) else text.replace(" ", "").split(",")
            values = tuple(int(x) for x in items if str(x) != "")
            if not values:
                raise ValueError("empty list")
            return values
        if kind == tuple[str, ...]:
            items = raw if isinstance(raw, list) else text.split(",")
            return tuple(str(x).strip() for x in items if str(x).strip())
        if kind is str:
            return text
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}={raw!r} is not a valid {_kind_name(kind)}: {e}") from e
    raise ConfigError(f"{name}: unsupported setting type {kind!r}")


TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def _boolean(raw: Any) -> bool:
    """A TOML boolean, or one of the usual words in a variable (true/false, 1/0, yes/no,
    on/off); anything else is refused rather than read as false."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError("expected true or false")


def _kind_name(kind: Any) -> str:
    if kind == tuple[int, ...]:
        return "comma-separated list of integers"
    if kind == tuple[str, ...]:
        return "comma-separated list"
    return getattr(kind, "__name__", str(kind))


def _build(cls: type[Any], prefix: str, env: Mapping[str, str], table: Mapping[str, Any]) -> Any:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    known = {f.name for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown setting {prefix}{key.upper()} in the config file")
    for f in fields(cls):
        kind = hints[f.name]
        var = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(kind):
            sub = table.get(f.name, {})
            if not isinstance(sub, Mapping):
                raise ConfigError(f"[{f.name}] in the config file must be a table")
            values[f.name] = _build(kind, f"{var}_", env, sub)  # type: ignore[arg-type]
            continue
        if var in env and env[var] != "":
            values[f.name] = _convert(var, env[var], kind)
        elif f.name in table:
            values[f.name] = _convert(var, table[f.name], kind)
    settings = cls(**values)
    _check_positive(settings, prefix)
    return settings


# Numbers whose 0 has a meaning of its own (no cap, no wait); every other must be positive.
MAY_BE_ZERO = frozenset({"GATEWAY_API_CONNECTIONS_PER_ADDRESS", "GATEWAY_API_LONG_POLL"})


def _check_positive(section: Any, prefix: str) -> None:
    for f in fields(section):
        value = getattr(section, f.name)
        var = f"{prefix}{f.name.upper()}"
        number = isinstance(value, int) and not isinstance(value, bool)
        if var in MAY_BE_ZERO and number:
            if value < 0:
                raise ConfigError(f"{var} must be 0 or more, got {value!r}")
            continue
        bad = (number and value <= 0) or (
            isinstance(value, tuple) and any(isinstance(v, int) and v <= 0 for v in value)
        )
        if bad:
            raise ConfigError(f"{var} must be positive, got {value!r}")


def _config_file(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("GATEWAY_CONFIG")
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"GATEWAY_CONFIG={path}: cannot read the file ({e})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"GATEWAY_CONFIG={path}: invalid TOML ({e})") from e


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once: the TOML file named by GATEWAY_CONFIG, then the environment."""
    env = os.environ if env is None else env
    settings: Settings = _build(Settings, "GATEWAY_", env, _config_file(env))
    return settings


# Variables that are not settings of the gateway but are read by its commands.
OTHER_VARIABLES = frozenset({"GATEWAY_CONFIG", "GATEWAY_URL", "GATEWAY_TOKEN"})


def setting_sources(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each setting comes from: ``environment``, ``file`` (GATEWAY_CONFIG) or
    ``default``, by variable name."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}

    def walk(cls: type[Any], prefix: str, table: Mapping[str, Any]) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            var = f"{prefix}{f.name.upper()}"
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{var}_", table.get(f.name, {}))
            elif env.get(var, "") != "":
                found[var] = "environment"
            else:
                found[var] = "file" if f.name in table else "default"

    walk(Settings, "GATEWAY_", _config_file(env))
    return found


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """``GATEWAY_*`` variables that name no setting (a typo is otherwise silently ignored);
    the test suite's own ``GATEWAY_TEST_*`` are not the gateway's."""
    env = os.environ if env is None else env
    known = set(setting_sources(env)) | OTHER_VARIABLES
    return sorted(
        v
        for v in env
        if v.startswith("GATEWAY_") and v not in known and not v.startswith("GATEWAY_TEST_")
    )
