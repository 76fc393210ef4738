"""The ledger's tables. Both are append-only: rows are inserted, never updated or deleted (the
migration adds triggers that refuse UPDATE, DELETE and, on PostgreSQL, TRUNCATE).

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


entry_table = cast(Table, EntryRow.__table__)
checkpoint_table = cast(Table, CheckpointRow.__table__)
