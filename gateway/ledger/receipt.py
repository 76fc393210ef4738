"""Receipts: self-contained proof that entries are in the ledger, checkable offline with nothing
but the receipt and the gateway's public key (pure).

A receipt is one signed checkpoint plus, for each entry, its canonical bytes and its inclusion
proof in the tree of the checkpoint's size. The format is documented in docs/ledger.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import GatewayError
from gateway.evidence.ack import Statement, ack_sha256, check_signature, parse_ack
from gateway.ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from gateway.ledger.cosignature import Cosignature, WitnessKey, cosignatures_in
from gateway.ledger.entry import Entry, EventType, format_time, parse_entry
from gateway.ledger.merkle import leaf_hash, verify_inclusion

FORMAT = "gateway-ledger-receipt/v1"


def _invalid(message: str) -> GatewayError:
    return GatewayError("proof_invalid", message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class ReceiptEntry:
    index: int
    data: bytes  # canonical entry bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class Receipt:
    checkpoint: str  # the signed checkpoint note
    entries: tuple[ReceiptEntry, ...]
    public_key_pem: str
    verifier_key: str
    certificate_chain: str | None = None  # PEM: the gateway certificate, then its issuers
    checkpoint_time: datetime | None = None  # when the gateway signed it (not signed itself)
    # The recipients' signed acknowledgements (compact JWS) that ``delivered`` entries name.
    acknowledgements: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        head = parse_checkpoint(parse_note(self.checkpoint).text)
        return {
            "format": FORMAT,
            "origin": head.origin,
            "tree_size": head.size,
            "root_hash": _b64(head.root),
            "checkpoint": self.checkpoint,
            "checkpoint_time": format_time(self.checkpoint_time) if self.checkpoint_time else None,
            "entries": [
                {
                    "index": e.index,
                    "entry": _b64(e.data),
                    "leaf_hash": _b64(leaf_hash(e.data)),
                    "inclusion_proof": [_b64(p) for p in e.proof],
                    "event": json.loads(e.data),
                }
                for e in self.entries
            ],
            "public_key": self.public_key_pem,
            "verifier_key": self.verifier_key,
            "certificate_chain": self.certificate_chain,
            "acknowledgements": list(self.acknowledgements),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"


def receipt_from_json(obj: Any) -> Receipt:
    """Read a receipt's JSON object; proof_invalid when it is not one."""
    try:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise _invalid(f"not a {FORMAT} receipt")
        entries = tuple(
            ReceiptEntry(
                index=_int(e["index"]),
                data=base64.b64decode(e["entry"], validate=True),
                proof=tuple(base64.b64decode(p, validate=True) for p in e["inclusion_proof"]),
            )
            for e in obj["entries"]
        )
        return Receipt(
            checkpoint=_str(obj["checkpoint"]),
            entries=entries,
            public_key_pem=_str(obj.get("public_key") or ""),
            verifier_key=_str(obj.get("verifier_key") or ""),
            certificate_chain=obj.get("certificate_chain"),
            acknowledgements=tuple(_str(a) for a in obj.get("acknowledgements") or ()),
        )
    except (KeyError, TypeError, ValueError) as e:  # ValueError: binascii.Error, not ASCII
        raise _invalid(f"malformed receipt: {e!r}") from e


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


@dataclass(frozen=True)
class VerifiedReceipt:
    checkpoint: Checkpoint
    entries: tuple[Entry, ...]
    notes: tuple[str, ...] = field(default=())  # remarks that do not fail the receipt
    cosignatures: tuple[Cosignature, ...] = ()  # by the witnesses asked for
    acknowledgements: tuple[Statement, ...] = ()  # signed statements the entries name


def verify_receipt(
    obj: Any,
    key: NoteVerifier | Ed25519PublicKey,
    witnesses: tuple[WitnessKey, ...] = (),
    min_witnesses: int = 0,
) -> VerifiedReceipt:
    """Check a receipt (its JSON object) against the gateway's public key.

    ``key`` is the trusted key: a NoteVerifier (from a ``name+id+key`` verifier key) or a bare
    Ed25519 public key, which is then named by the checkpoint's origin. The key embedded in the
    receipt is never trusted. With ``witnesses``, their cosignatures of the checkpoint are
    checked and at least ``min_witnesses`` of them required. Each signed acknowledgement must
    verify with its own certificate's key and be the one a ``delivered`` entry names (whether
    that certificate is trusted is the bundle's check, which carries the trust anchors).
    Raises GatewayError ``proof_invalid`` on any failure.
    """
    receipt = receipt_from_json(obj)
    note = parse_note(receipt.checkpoint)
    claimed = parse_checkpoint(note.text)
    verifier = key if isinstance(key, NoteVerifier) else NoteVerifier(claimed.origin, key)
    head = open_checkpoint(receipt.checkpoint, verifier)
    if (obj.get("origin"), obj.get("tree_size"), obj.get("root_hash")) != (
        head.origin,
        head.size,
        _b64(head.root),
    ):
        raise _invalid("the receipt's origin, tree_size or root_hash differ from its checkpoint")
    if not receipt.entries:
        raise _invalid("the receipt holds no entry")
    entries = [
        _verify_entry(e, head, raw) for e, raw in zip(receipt.entries, obj["entries"], strict=True)
    ]
    cosigned = cosignatures_in(receipt.checkpoint, witnesses)
    if len(cosigned) < min_witnesses:
        raise _invalid(
            f"the checkpoint carries {len(cosigned)} cosignature(s) by the witnesses given, "
            f"{min_witnesses} required"
        )
    statements = tuple(_verify_ack(jws, entries) for jws in receipt.acknowledgements)
    notes: list[str] = []
    embedded = receipt.verifier_key
    if embedded and embedded != verifier.vkey:
        notes.append(f"the receipt names key {embedded.split('+')[0]}, not the key given")
    return VerifiedReceipt(head, tuple(entries), tuple(notes), tuple(cosigned), statements)


def _verify_ack(jws: str, entries: list[Entry]) -> Statement:
    """A signed acknowledgement that a ``delivered`` entry of the receipt names by its hash."""
    try:
        parsed = parse_ack(jws)
        check_signature(parsed)
    except GatewayError as e:
        raise _invalid(f"acknowledgement: {e.message}") from e
    said, sha = parsed.statement, ack_sha256(jws)
    for entry in entries:
        ev = entry.event
        if (
            ev.type is EventType.DELIVERED
            and ev.details.get("ack_sha256") == sha
            and ev.recipient == said.recipient
            and ev.details.get("delivery_id") == said.delivery_id
        ):
            return said
    raise _invalid(
        f"the acknowledgement of {said.delivery_id} by {said.recipient} is named by no "
        "delivered entry of the receipt"
    )


def _verify_entry(item: ReceiptEntry, head: Checkpoint, raw: Any) -> Entry:
    where = f"entry {item.index}"
    try:
        entry = parse_entry(item.data)
    except ValueError as e:
        raise _invalid(f"{where}: {e}") from e
    if entry.seq != item.index:
        raise _invalid(f"{where}: the entry bytes say seq {entry.seq}")
    if raw.get("event") is not None and raw["event"] != entry.to_json():
        raise _invalid(f"{where}: the readable 'event' differs from the signed entry bytes")
    leaf = leaf_hash(item.data)
    if raw.get("leaf_hash") is not None and raw["leaf_hash"] != _b64(leaf):
        raise _invalid(f"{where}: leaf_hash is not the hash of the entry bytes")
    try:
        verify_inclusion(leaf, item.index, head.size, item.proof, head.root)
    except GatewayError as e:
        raise _invalid(f"{where}: {e.message}") from e
    return entry


def load_verifier(text: str) -> NoteVerifier | Ed25519PublicKey:
    """A trusted key from its text: a PEM public key, a PEM certificate (its key) or a
    signed-note verifier key ``name+id+base64``."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        data = text.encode()
        key: Any
        if b"CERTIFICATE" in data.split(b"\n", 1)[0]:
            try:
                key = x509.load_pem_x509_certificate(data).public_key()
            except x509.InvalidVersion as e:  # not a ValueError
                raise ValueError(f"not a certificate: {e}") from e
        else:
            key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the gateway's checkpoint key is Ed25519; this key is not")
        return key
    return NoteVerifier.from_vkey(text)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def build_receipt(
    checkpoint_note: str,
    items: Sequence[ReceiptEntry],
    verifier: NoteVerifier,
    certificate_chain: str | None = None,
    checkpoint_time: datetime | None = None,
) -> Receipt:
    return Receipt(
        checkpoint=checkpoint_note,
        entries=tuple(items),
        public_key_pem=public_key_pem(verifier.public_key),
        verifier_key=verifier.vkey,
        certificate_chain=certificate_chain,
        checkpoint_time=checkpoint_time,
    )
