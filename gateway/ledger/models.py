"""The ledger's tables. Entries and checkpoints are append-only: rows are inserted, never
updated or deleted (the migration adds triggers that refuse UPDATE, DELETE and, on PostgreSQL,
TRUNCATE). The identity records the origin and the signing key with the log.

``ledger_entry.nodes`` holds the Merkle nodes that the entry's leaf completes: the entry at
``seq`` completes one node per trailing one-bit of ``seq`` (level 1 upwards, 32 bytes each),
so node ``(level, index)`` lives in row ``((index + 1) << level) - 1``. Every stored node is
final when written; a proof or tree head reads O(log n) rows by primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.engine import Base, UtcDateTime

# SQLite's INTEGER PRIMARY KEY is the rowid itself: no second index to maintain.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class EntryRow(Base):
    __tablename__ = "ledger_entry"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    document: Mapped[str | None] = mapped_column(String(300))
    sender: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(64))
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # canonical entry bytes
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    nodes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # completed nodes

    __table_args__ = (
        Index(None, "document", "seq"),
        Index(None, "sender", "seq"),
        Index(None, "recipient", "seq"),
        Index(None, "time"),
    )


class CheckpointRow(Base):
    __tablename__ = "ledger_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)  # the signed checkpoint

    __table_args__ = (Index(None, "tree_size"),)


class IdentityRow(Base):
    """What the ledger is: the origin its checkpoints name and the key that signs them,
    recorded the first time a gateway opens it (a new row when a key is first recorded)."""

    __tablename__ = "ledger_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(255), nullable=False)
    vkey: Mapped[str | None] = mapped_column(Text)  # signed-note verifier key name+id+key
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class CosignatureRow(Base):
    """A witness's cosignature of a checkpoint (C2SP tlog-cosignature): the signature line to
    add to the checkpoint's note. Checked against the configured witness keys when posted."""

    __tablename__ = "ledger_cosignature"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checkpoint_id: Mapped[int] = mapped_column(Integer, nullable=False)
    witness: Mapped[str] = mapped_column(Text, nullable=False)  # its verifier key
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)  # as it signed
    line: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)

    __table_args__ = (Index(None, "checkpoint_id"),)


entry_table = cast(Table, EntryRow.__table__)
checkpoint_table = cast(Table, CheckpointRow.__table__)
identity_table = cast(Table, IdentityRow.__table__)
cosignature_table = cast(Table, CosignatureRow.__table__)
