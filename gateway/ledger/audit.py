"""Recompute the whole log from its stored rows and name the first place where the rows, the
stored tree or the signed checkpoints disagree (pure: rows in, findings out).

Rows are fed in ``seq`` order. Each row is checked on its own (canonical bytes, the ``seq`` and
columns inside them, its leaf hash, the tree nodes it completes); each checkpoint is checked
when the recomputed tree reaches its size (root hash, and signature when a key is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import GatewayError
from gateway.ledger.checkpoint import NoteVerifier, parse_checkpoint, parse_note
from gateway.ledger.entry import parse_entry
from gateway.ledger.merkle import HASH_SIZE, CompactRange, leaf_hash


@dataclass(frozen=True)
class StoredRow:
    seq: int
    time: datetime
    type: str
    document: str | None
    sender: str | None
    recipient: str | None
    package_sha256: str | None
    code: str | None
    data: bytes
    leaf_hash: bytes
    nodes: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    tree_size: int
    root_hash: bytes
    created_at: datetime
    note: str


@dataclass(frozen=True)
class Finding:
    """The first thing wrong: a sequence number (or None) and what is wrong there."""

    seq: int | None
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}" if self.seq is not None else self.message


class _Corrupt(Exception):
    """Internal: stops the checks at the first finding."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


class LogAuditor:
    """Feed rows in order, then ``finish``. Both return the first Finding, or None while all is
    well; after a finding the auditor is spent."""

    def __init__(
        self,
        checkpoints: Sequence[StoredCheckpoint],
        verifier: NoteVerifier | None,
        origin: str | None = None,
    ) -> None:
        self.tree = CompactRange()
        self.verifier = verifier
        self.origin = origin
        self.pending = sorted(checkpoints, key=lambda c: (c.tree_size, c.id))
        self.checked = 0
        self.last_good_size = 0
        self._started = False

    @property
    def size(self) -> int:
        return self.tree.size

    def feed(self, row: StoredRow) -> Finding | None:
        try:
            self._feed(row)
        except _Corrupt as e:
            return e.finding
        return None

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._check_due()  # checkpoints of the empty tree

    def _feed(self, row: StoredRow) -> None:
        self._start()
        expected = self.tree.size
        if row.seq != expected:
            raise _Corrupt(
                Finding(
                    expected,
                    f"entry missing (the next row is seq {row.seq}): "
                    "a row was removed or renumbered",
                )
            )
        try:
            entry = parse_entry(row.data)
        except ValueError as e:
            raise _Corrupt(
                Finding(
                    row.seq, f"entry bytes are not a canonical entry ({e}): the row was altered"
                )
            ) from e
        if entry.seq != row.seq:
            how = (
                "a row was inserted before it, or rows renumbered"
                if entry.seq < row.seq
                else "rows were swapped or renumbered"
            )
            raise _Corrupt(Finding(row.seq, f"the entry bytes say seq {entry.seq}: {how}"))
        ev = entry.event
        columns = {
            "time": (row.time, entry.time),
            "type": (row.type, ev.type.value),
            "document": (row.document, ev.document),
            "sender": (row.sender, ev.sender),
            "recipient": (row.recipient, ev.recipient),
            "package_sha256": (row.package_sha256, ev.package_sha256),
            "code": (row.code, ev.code),
        }
        for name, (stored, signed) in columns.items():
            if stored != signed:
                raise _Corrupt(
                    Finding(
                        row.seq,
                        f"column {name} is {stored!r} but the entry "
                        f"bytes say {signed!r}: the row was altered",
                    )
                )
        leaf = leaf_hash(row.data)
        if row.leaf_hash != leaf:
            raise _Corrupt(
                Finding(
                    row.seq,
                    "the stored leaf hash is not the hash of the entry bytes: the row was altered",
                )
            )
        completed = b"".join(h for _, h in self.tree.append(leaf))
        if row.nodes != completed or len(completed) % HASH_SIZE:
            raise _Corrupt(
                Finding(
                    row.seq,
                    "the stored tree nodes differ from the recomputed tree: the row was altered",
                )
            )
        self._check_due()

    def _check_due(self) -> None:
        size = self.tree.size
        while self.pending and self.pending[0].tree_size == size:
            self._check_checkpoint(self.pending.pop(0))

    def _check_checkpoint(self, cp: StoredCheckpoint) -> None:
        root = self.tree.root()
        where = (
            f"checkpoint #{cp.id} (size {cp.tree_size}, signed {cp.created_at:%Y-%m-%d %H:%M:%S}Z)"
        )
        try:
            text = self.verifier.verify(cp.note) if self.verifier else parse_note(cp.note).text
            head = parse_checkpoint(text)
        except GatewayError as e:
            raise _Corrupt(Finding(None, f"{where}: {e.message}")) from e
        if (head.size, head.root) != (cp.tree_size, cp.root_hash):
            raise _Corrupt(
                Finding(
                    None,
                    f"{where}: the stored size or root differ from the "
                    "signed note: the checkpoint row was altered",
                )
            )
        if self.origin is not None and head.origin != self.origin:
            raise _Corrupt(Finding(None, f"{where}: origin {head.origin!r} is not {self.origin!r}"))
        if head.root != root:
            first = self.last_good_size
            raise _Corrupt(
                Finding(
                    first,
                    f"the entries from seq {first} to {cp.tree_size - 1} "
                    f"do not match {where}: rows in that range were "
                    "rewritten with recomputed hashes",
                )
            )
        self.checked += 1
        self.last_good_size = cp.tree_size

    def finish(self) -> Finding | None:
        """Call after the last row; ``root()`` is then the recomputed tree head."""
        try:
            self._start()
        except _Corrupt as e:
            return e.finding
        if self.pending:
            cp = self.pending[0]
            return Finding(
                self.tree.size,
                f"checkpoint #{cp.id} covers {cp.tree_size} entries "
                f"but the log has {self.tree.size}: rows were "
                "removed from the end",
            )
        return None

    def root(self) -> bytes:
        return self.tree.root()
