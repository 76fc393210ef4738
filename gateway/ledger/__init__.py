"""The delivery ledger: an append-only RFC 6962 Merkle log of delivery events with signed C2SP
checkpoints, inclusion and consistency proofs, offline-verifiable receipts and audit queries.

Pure parts: ``merkle`` (hashing and proofs), ``checkpoint`` (signed notes), ``entry`` (events and
their canonical bytes), ``receipt`` and ``audit``. Storage: ``models``, ``store``
(:class:`SqlLedger`), ``append`` and ``query``, on the database of ``gateway.db``. See
docs/ledger.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import on_first_use
from gateway.ledger.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from gateway.ledger.entry import Entry, Event, EventType
from gateway.ledger.receipt import Receipt, VerifiedReceipt, verify_receipt

if TYPE_CHECKING:
    from gateway.ledger.query import Page, Query
    from gateway.ledger.store import SqlLedger, VerifyReport, open_ledger

# The storage side loads SQLAlchemy, so it is imported on first use: the auditor's offline
# check (merkle, checkpoint, entry, receipt) needs no database library.
_STORAGE = {
    "Page": "gateway.ledger.query",
    "Query": "gateway.ledger.query",
    "SqlLedger": "gateway.ledger.store",
    "VerifyReport": "gateway.ledger.store",
    "open_ledger": "gateway.ledger.store",
}


__getattr__ = on_first_use(__name__, _STORAGE)


__all__ = [
    "Checkpoint",
    "Entry",
    "Event",
    "EventType",
    "NoteSigner",
    "NoteVerifier",
    "Page",
    "Query",
    "Receipt",
    "SqlLedger",
    "VerifiedReceipt",
    "VerifyReport",
    "open_ledger",
    "verify_receipt",
]
