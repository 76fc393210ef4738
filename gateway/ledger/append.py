"""Appending to the ledger inside one write transaction: the entries' rows, their leaves and
tree nodes computed in memory, and the checkpoints that fall due, written at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.audit import StoredCheckpoint
from gateway.ledger.checkpoint import Checkpoint
from gateway.ledger.entry import Entry, Event
from gateway.ledger.merkle import CompactRange, leaf_hash
from gateway.ledger.models import entry_table

if TYPE_CHECKING:
    from gateway.ledger.store import SqlLedger


@dataclass(frozen=True)
class Head:
    """The committed log as this process last saw it: enough to append without re-reading."""

    size: int
    frontier: tuple[bytes, ...]
    last_leaf: bytes | None
    checkpoint: StoredCheckpoint | None


@dataclass(frozen=True)
class Mark:
    rows: int
    heads: int
    size: int
    hashes: tuple[bytes, ...]
    last_leaf: bytes | None
    last_size: int


# The tree as a transaction found it under the lock: its frontier, last leaf and newest
# checkpoint.
Loaded = tuple[CompactRange, bytes | None, StoredCheckpoint | None]


@dataclass
class Transaction:
    head: Head | None = None  # becomes the ledger's head if the transaction commits
    loaded: Loaded | None = None  # what taking the lock brought, until an appender uses it


class Appender:
    """Events appended in one write transaction, under the ledger lock: :meth:`add` numbers
    them and computes their leaves and tree nodes in memory, :meth:`flush` writes every row in
    one statement and signs the checkpoints that fell due. Nothing is written if the
    transaction rolls back."""

    def __init__(
        self,
        ledger: SqlLedger,
        tree: CompactRange,
        last_leaf: bytes | None,
        last: StoredCheckpoint | None,
        state: Transaction | None,
    ) -> None:
        self._ledger = ledger
        self._tree = tree
        self._last_leaf = last_leaf
        self._last = last
        self._state = state
        self._last_size = last.tree_size if last else 0
        self._rows: list[dict[str, Any]] = []
        self._heads: list[Checkpoint] = []

    @property
    def size(self) -> int:
        return self._tree.size

    def add(self, events: Iterable[Event]) -> list[int]:
        ledger = self._ledger
        now = ledger.clock()
        tree = self._tree
        seqs = []
        for event in events:
            entry = Entry(tree.size, now, event)
            data = entry.data
            self._last_leaf = leaf_hash(data)
            completed = tree.append(self._last_leaf)
            self._rows.append(
                entry_row(entry, data, self._last_leaf, b"".join(h for _, h in completed))
            )
            seqs.append(entry.seq)
            if tree.size - self._last_size >= ledger.checkpoint_entries:
                self._heads.append(Checkpoint(ledger.origin, tree.size, tree.root()))
                self._last_size = tree.size
        return seqs

    def mark(self) -> Mark:
        """Where the appender stands, to :meth:`reset` to if a caller gives up its events."""
        tree = self._tree
        return Mark(
            len(self._rows),
            len(self._heads),
            tree.size,
            tuple(tree.hashes),
            self._last_leaf,
            self._last_size,
        )

    def reset(self, mark: Mark) -> None:
        del self._rows[mark.rows :]
        del self._heads[mark.heads :]
        self._tree = CompactRange(mark.size, list(mark.hashes))
        self._last_leaf = mark.last_leaf
        self._last_size = mark.last_size

    async def flush(self, conn: AsyncConnection) -> None:
        ledger = self._ledger
        now = ledger.clock()
        tree = self._tree
        if self._rows:
            await conn.execute(insert(entry_table), self._rows)
            self._rows = []
        last = self._last
        stale = last is None or now - last.created_at >= ledger.checkpoint_interval
        if stale and tree.size > self._last_size and not self._heads:
            self._heads.append(Checkpoint(ledger.origin, tree.size, tree.root()))
        if ledger.signer is not None:
            for head in self._heads:
                last = await ledger.insert_checkpoint(conn, head, now)
        self._heads = []
        self._last = last
        self._last_size = last.tree_size if last else 0
        if self._state is not None:
            self._state.head = Head(tree.size, tuple(tree.hashes), self._last_leaf, last)


def entry_row(entry: Entry, data: bytes, leaf: bytes, nodes: bytes) -> dict[str, Any]:
    ev = entry.event
    return {
        "seq": entry.seq,
        "time": entry.time,
        "type": ev.type.value,
        "document": ev.document,
        "sender": ev.sender,
        "recipient": ev.recipient,
        "package_sha256": ev.package_sha256,
        "code": ev.code,
        "data": data,
        "leaf_hash": leaf,
        "nodes": nodes,
    }
