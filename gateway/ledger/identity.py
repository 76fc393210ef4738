"""What a ledger is: the origin its checkpoints name and the key that signs them, recorded in
the database with the log. A gateway records them the first time it opens the ledger and
refuses to run with another origin or key; ``gateway ledger verify`` reads them, so it needs
only the database, and a configuration naming another origin is a mismatch, not corruption.

(For proof against whoever runs the database, an auditor gives the key from a source of their
own: ``--key``. The recorded key is the convenient default, not the anchor of trust.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.engine import write_transaction
from gateway.errors import ConfigError
from gateway.ledger.checkpoint import NoteVerifier, parse_checkpoint, parse_note
from gateway.ledger.models import checkpoint_table, identity_table


@dataclass(frozen=True)
class LedgerIdentity:
    origin: str
    vkey: str | None  # None: no key recorded (a ledger written before identities were)

    @property
    def verifier(self) -> NoteVerifier | None:
        return NoteVerifier.from_vkey(self.vkey) if self.vkey else None


class LedgerMismatch(ConfigError):
    """The configuration names another origin or key than the ledger's own."""

    def __init__(self, message: str) -> None:
        super().__init__(f"configuration mismatch: {message}", code="config_invalid")


async def read_identity(conn: AsyncConnection) -> LedgerIdentity | None:
    """The recorded identity; for an older ledger without one, the origin of its latest
    checkpoint (and no key); None for a ledger that has neither."""
    i, c = identity_table.c, checkpoint_table.c
    row = (await conn.execute(select(i.origin, i.vkey).order_by(i.id.desc()).limit(1))).first()
    if row is not None:
        return LedgerIdentity(row.origin, row.vkey)
    note = await conn.scalar(select(c.note).order_by(c.id.desc()).limit(1))
    if note is None:
        return None
    return LedgerIdentity(parse_checkpoint(parse_note(note).text).origin, None)


async def bind_identity(
    engine: AsyncEngine, origin: str, signer: NoteVerifier | None
) -> LedgerIdentity:
    """Record ``origin`` and the signer's key with a ledger that has none yet; refuse
    (LedgerMismatch) a ledger that has another origin or key."""
    vkey = signer.vkey if signer is not None else None
    # It may write after reading: on SQLite the write lock is taken at BEGIN, or two gateways
    # starting at once (serve --workers) find the database locked when the second upgrades.
    async with write_transaction(engine) as conn:
        found = await read_identity(conn)
        if found is not None and found.origin != origin:
            raise LedgerMismatch(
                f"the ledger in this database has the origin {found.origin!r}; the "
                f"configuration (GATEWAY_LEDGER_ORIGIN) names {origin!r}"
            )
        if found is not None and found.vkey and vkey and found.vkey != vkey:
            raise LedgerMismatch(
                f"the ledger's checkpoints are signed by {found.vkey.split('+')[0]}+"
                f"{found.vkey.split('+')[1]}; the gateway key in use is {vkey.split('+')[1]}"
            )
        if found is None or (found.vkey is None and vkey is not None):
            await conn.execute(
                insert(identity_table),
                {"origin": origin, "vkey": vkey, "recorded_at": datetime.now(UTC)},
            )
            return LedgerIdentity(origin, vkey)
        return found
