"""The national-axis façade's credentials: a shared secret per connected system, and the
memory of signed requests that makes a replay fail.

The protocol signs each request with HMAC-SHA256 under the shared secret, so the gateway must
hold the secret itself, not a digest of it: it is kept encrypted (Fernet) under a key file of
its own (``GATEWAY_VXP_KEY_FILE``, default ``<home>/vxp-secrets.key``, created on first use
with mode 0600). A copy of the database alone reveals no secret; the key file and the
database together do, so the key file is kept apart from database backups."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings
from gateway.db.engine import reader, write_transaction
from gateway.errors import ConfigError
from gateway.service import vxp_store
from gateway.service.keyfile import read_or_make
from gateway.service.vxp_store import SystemRecord


def key_file(settings: Settings) -> Path:
    """GATEWAY_VXP_KEY_FILE, or ``<home>/vxp-secrets.key``."""
    return settings.vxp.key_file or settings.home / "vxp-secrets.key"


def open_key(path: Path) -> Fernet:
    """The secrets' key, made on first use (readable by its owner only)."""
    key = read_or_make(path, Fernet.generate_key, "the façade key")
    try:
        return Fernet(key.strip())
    except ValueError as e:
        raise ConfigError(f"the façade key {path} cannot be read: {e}") from e


@dataclass(frozen=True)
class IssuedSecret:
    system_id: str
    secret: str  # shown once


async def issue_secret(engine: AsyncEngine, key: Fernet, system_id: str) -> IssuedSecret:
    """A new secret for ``system_id`` (its unit's OrganId); an earlier one stops working."""
    secret = secrets.token_urlsafe(32)
    encrypted = key.encrypt(secret.encode("utf-8")).decode("ascii")
    async with write_transaction(engine) as conn:
        await vxp_store.save_system(conn, system_id, encrypted, datetime.now(UTC))
    return IssuedSecret(system_id, secret)


async def revoke_secret(engine: AsyncEngine, system_id: str) -> int:
    """Revoke the system's secret; 1 if it had one in force, else 0."""
    async with write_transaction(engine) as conn:
        return await vxp_store.revoke_system(conn, system_id, datetime.now(UTC))


async def list_systems(engine: AsyncEngine) -> list[SystemRecord]:
    async with engine.connect() as conn:
        return await vxp_store.systems(conn)


class Credentials:
    """What the façade checks requests against: each system's secret, read from the database
    at every request (a revocation, by any process, is in force at once), and the signed
    requests seen within the clock-skew window."""

    def __init__(self, engine: AsyncEngine, key: Fernet, window_seconds: int) -> None:
        self.engine = engine
        self._reader = reader(engine)
        self.key = key
        self.window = timedelta(seconds=window_seconds)
        self._pruned_at: datetime | None = None

    async def secret_of(self, system_id: str) -> str | None:
        """The system's secret in force, or None (unknown, revoked, or encrypted under
        another key: the façade refuses all three alike)."""
        async with self._reader.connect() as conn:
            record = await vxp_store.system(conn, system_id)
        if record is None or record.revoked_at is not None:
            return None
        try:
            return self.key.decrypt(record.secret_encrypted.encode("ascii")).decode("utf-8")
        except InvalidToken:
            return None

    async def first_time(self, system_id: str, stamp: str, signature: str) -> bool:
        """Record a signed request; False if it was seen before (a replay). Requests older
        than twice the window (seen, and so stamped, at least one window ago, and refused as
        stale from then on) are dropped once a minute."""
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            if self._pruned_at is None or now - self._pruned_at > timedelta(minutes=1):
                self._pruned_at = now
                await vxp_store.forget_before(conn, now - 2 * self.window)
            return await vxp_store.remember(conn, system_id, stamp, signature, now)
