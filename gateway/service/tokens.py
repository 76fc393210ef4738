"""Access tokens: issued once, stored only as a SHA-256, checked on every request.

A token reads ``gw_<token_id>_<secret>``; the id names it in listings and revocations, the
secret is never stored."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import GatewayError
from gateway.service import store
from gateway.service.store import TokenRecord


class Role(enum.StrEnum):
    UNIT = "unit"  # an agency system: its own packages, inbox and documents
    OPERATOR = "operator"  # the data centre: everything a unit reads, for every unit; redrive
    AUDITOR = "auditor"  # reads the ledger and every document; changes nothing


@dataclass(frozen=True)
class Principal:
    token_id: str
    unit: str
    role: Role

    def may_read_inbox(self, unit: str) -> bool:
        """A unit its own inbox, an operator any; an auditor none (it reads the ledger)."""
        return self.role is Role.OPERATOR or (self.role is Role.UNIT and self.unit == unit)


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once
    unit: str
    role: Role
    expires_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def issue_token(
    engine: AsyncEngine, unit: str, role: Role, *, days: int | None = None
) -> IssuedToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires = now + timedelta(days=days) if days else None
    async with engine.begin() as conn:
        await store.insert_token(
            conn,
            {
                "token_id": token_id,
                "secret_sha256": _digest(secret),
                "unit": unit,
                "role": role.value,
                "created_at": now,
                "expires_at": expires,
            },
        )
    return IssuedToken(token_id, f"gw_{token_id}_{secret}", unit, role, expires)


async def revoke_tokens(
    engine: AsyncEngine, *, token_id: str | None = None, unit: str | None = None
) -> int:
    """Revoke one token by id, or every token of a unit; return how many were revoked."""
    if (token_id is None) == (unit is None):
        raise ValueError("revoke by token id or by unit")
    async with engine.begin() as conn:
        return await store.revoke_tokens(conn, datetime.now(UTC), token_id=token_id, unit=unit)


async def list_tokens(engine: AsyncEngine) -> list[TokenRecord]:
    async with engine.connect() as conn:
        return await store.tokens(conn)


@dataclass(frozen=True)
class _Known:
    checked_at: float
    digest: str
    principal: Principal
    expires_at: datetime | None


class TokenChecker:
    """Authenticates bearer tokens. A token checked less than ``cache_seconds`` ago is not
    read again: a busy system costs one database read per token that often, and a token
    revoked by another process (``gateway tokens revoke``, another worker) is refused within
    that time. Revoked through this process, it is refused at once (``forget``)."""

    def __init__(self, engine: AsyncEngine, cache_seconds: float = 10.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._known: dict[str, _Known] = {}

    async def authenticate(self, token: str, now: datetime) -> Principal:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "gw":
            raise GatewayError("unauthenticated", "the bearer token is malformed")
        token_id, digest = parts[1], _digest(parts[2])
        known = self._known.get(token_id)
        if known is None or now.timestamp() - known.checked_at >= self.cache_seconds:
            known = await self._load(token_id, now)
        if not hmac.compare_digest(known.digest, digest):
            raise GatewayError("unauthenticated", "the bearer token is not known")
        if known.expires_at is not None and known.expires_at <= now:
            raise GatewayError("unauthenticated", "the bearer token has expired")
        return known.principal

    def forget(self, token_id: str) -> None:
        """Read the token again at its next use (it was revoked here)."""
        self._known.pop(token_id, None)

    async def _load(self, token_id: str, now: datetime) -> _Known:
        async with self.engine.connect() as conn:
            row = await store.token(conn, token_id)
        if row is None:
            raise GatewayError("unauthenticated", "the bearer token is not known")
        if row.revoked_at is not None:
            self._known.pop(token_id, None)
            raise GatewayError("unauthenticated", "the bearer token was revoked")
        known = _Known(
            now.timestamp(),
            row.secret_sha256,
            Principal(row.token_id, row.unit, Role(row.role)),
            row.expires_at,
        )
        self._known[token_id] = known
        return known
