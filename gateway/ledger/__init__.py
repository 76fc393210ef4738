"""The delivery ledger: an append-only RFC 6962 Merkle log of delivery events with signed C2SP
checkpoints, inclusion and consistency proofs, offline-verifiable receipts and audit queries.

Pure parts: ``merkle`` (hashing and proofs), ``checkpoint`` (signed notes), ``entry`` (events and
their canonical bytes), ``receipt`` and ``audit``. Storage: ``db`` (Base, engine), ``models``,
``migrate`` and ``store`` (:class:`SqlLedger`). See docs/ledger.md.
"""

from gateway.ledger.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from gateway.ledger.entry import Entry, Event, EventType
from gateway.ledger.query import Page, Query
from gateway.ledger.receipt import Receipt, VerifiedReceipt, verify_receipt
from gateway.ledger.store import SqlLedger, VerifyReport, open_ledger

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
