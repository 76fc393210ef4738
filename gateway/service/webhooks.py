"""Signed webhooks: every push carries ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` in the "Standard Webhooks" shape, so that a receiver can tell the
gateway's calls from anyone else's and refuse a replayed one.

The signature is ``v1,`` and the base64 of HMAC-SHA256 under the unit's secret of
``<webhook-id>.<webhook-timestamp>.<body>``; several are separated by spaces (during a
rotation, one per secret in force). A unit's secret is derived from the gateway's webhook
master key (a file of 32 random bytes beside the ledger, made on first use, readable by its
owner only) and the unit's current generation: nothing secret is stored in the database, and
every process that shares the home signs alike. Rotating a secret starts a new generation; the
previous one still signs for ``GATEWAY_PUSH_SECRET_OVERLAP`` hours, so the receiver can move to
the new secret without missing a call. The operator reads a secret with
``gateway webhooks secret CODE`` (``whsec_`` and its base64, the form receivers' libraries take).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.engine import reader, write_transaction
from gateway.errors import ConfigError
from gateway.service.keyfile import read_or_make
from gateway.service.models import webhook_key_table

PREFIX = "whsec_"
MASTER_FILE = "webhook-master.key"
_CACHE_SECONDS = 10.0  # a rotation by another process is seen within this


def master_key(home: Path) -> bytes:
    """The webhook master key at ``home/webhook-master.key``, made on first use (mode 0600)."""
    path = home / MASTER_FILE
    key = read_or_make(path, lambda: os.urandom(32), "the webhook master key")
    if len(key) != 32:
        raise ConfigError(f"the webhook master key {path} is not 32 bytes")
    return key


def unit_secret(master: bytes, unit: str, generation: int) -> bytes:
    return hmac.new(master, f"webhook:{unit}:{generation}".encode(), hashlib.sha256).digest()


def secret_text(secret: bytes) -> str:
    """How a receiver is given its secret: ``whsec_`` and the base64 of its bytes."""
    return PREFIX + base64.b64encode(secret).decode("ascii")


def signature(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class IssuedSecret:
    unit: str
    generation: int
    secret: str  # whsec_…


class WebhookSigner:
    """The headers of each push, under the secrets in force for its unit."""

    def __init__(self, engine: AsyncEngine, master: bytes, overlap: timedelta) -> None:
        self.engine = engine
        self.master = master
        self.overlap = overlap
        self._cache: dict[str, tuple[float, list[int]]] = {}

    async def headers(self, unit: str, webhook_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(time.time())
        signatures = [
            signature(unit_secret(self.master, unit, g), webhook_id, timestamp, body)
            for g in await self._generations(unit)
        ]
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures),
        }

    async def _generations(self, unit: str) -> list[int]:
        cached = self._cache.get(unit)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        async with reader(self.engine).connect() as conn:
            rows = await _rows(conn, unit)
        if not rows:  # a push unit gets its first secret when it first needs one
            await self.issue(unit, rotate=False)
            async with reader(self.engine).connect() as conn:
                rows = await _rows(conn, unit)
        now = datetime.now(UTC)
        in_force = [rows[0][0]]  # the newest, and each earlier one within its overlap
        for (generation, _), (_, succeeded_at) in zip(rows[1:], rows, strict=False):
            if now - succeeded_at >= self.overlap:
                break
            in_force.append(generation)
        self._cache[unit] = (time.monotonic(), in_force)
        return in_force

    async def issue(self, unit: str, *, rotate: bool) -> IssuedSecret:
        """The unit's current secret (made if it has none); with ``rotate``, a new one (the
        previous still signs during the overlap)."""
        for _ in range(5):
            try:
                async with write_transaction(self.engine) as conn:
                    rows = await _rows(conn, unit)
                    if rows and not rotate:
                        generation = rows[0][0]
                    else:
                        generation = rows[0][0] + 1 if rows else 1
                        now = datetime.now(UTC)
                        await conn.execute(
                            insert(webhook_key_table).values(
                                unit=unit, generation=generation, created_at=now
                            )
                        )
                break
            except IntegrityError:  # another process made that generation first: again
                continue
        else:
            raise ConfigError(f"could not make a webhook secret for {unit}")
        self._cache.pop(unit, None)
        return IssuedSecret(
            unit, generation, secret_text(unit_secret(self.master, unit, generation))
        )


async def _rows(conn: AsyncConnection, unit: str) -> list[tuple[int, datetime]]:
    """(generation, created_at) of the unit's secrets, newest first."""
    k = webhook_key_table.c
    result = await conn.execute(
        select(k.generation, k.created_at).where(k.unit == unit).order_by(k.generation.desc())
    )
    return [(int(g), created) for g, created in result]
