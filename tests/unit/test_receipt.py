"""Receipts built and checked without a database: every part of a receipt is bound to the
signed checkpoint, and only the key the auditor brings is trusted."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from trustkit import of_unknown_version

from gateway.errors import GatewayError
from gateway.ledger.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from gateway.ledger.entry import Entry, Event, EventType
from gateway.ledger.merkle import CompactRange, NodeId, build_proof, inclusion_plan
from gateway.ledger.receipt import (
    ReceiptEntry,
    build_receipt,
    load_verifier,
    public_key_pem,
    verify_receipt,
)

ORIGIN = "gateway.test/ledger"
T0 = datetime(2025, 1, 15, 8, 30, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
SIGNER = NoteSigner(ORIGIN, KEY)


def make_entries(n: int) -> list[Entry]:
    doc = "000.00.05.H07|000.00.05.H07,2025/01/15,12/UBND"
    return [
        Entry(
            i,
            T0 + timedelta(seconds=i),
            Event(
                EventType.DELIVERED if i % 2 else EventType.SUBMITTED,
                document=doc,
                sender="000.00.05.H07",
                recipient="000.01.05.H07" if i % 2 else None,
                package_sha256="ab" * 32,
                details={"attempt": i},
            ),
        )
        for i in range(n)
    ]


def make_receipt(
    n: int = 13, seqs: tuple[int, ...] = (3, 11), signer: NoteSigner = SIGNER
) -> dict[str, Any]:
    entries = make_entries(n)
    tree = CompactRange()
    nodes: dict[NodeId, bytes] = {}
    for e in entries:
        nodes[(0, e.seq)] = e.leaf_hash
        nodes.update(tree.append(e.leaf_hash))
    note = Checkpoint(ORIGIN, n, tree.root()).sign(signer)
    items = [
        ReceiptEntry(s, entries[s].data, tuple(build_proof(inclusion_plan(s, n), nodes)))
        for s in seqs
    ]
    receipt = build_receipt(note, items, signer, certificate_chain=None, checkpoint_time=T0)
    obj: dict[str, Any] = json.loads(receipt.dumps())
    return obj


def test_receipt_verifies_with_the_bare_public_key() -> None:
    verified = verify_receipt(make_receipt(), KEY.public_key())
    assert verified.checkpoint.size == 13
    assert [e.seq for e in verified.entries] == [3, 11]
    assert verified.entries[1].event.recipient == "000.01.05.H07"
    assert verified.notes == ()


def test_receipt_json_carries_the_documented_fields() -> None:
    obj = make_receipt()
    assert obj["format"] == "gateway-ledger-receipt/v1"
    assert (obj["origin"], obj["tree_size"]) == (ORIGIN, 13)
    assert obj["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert obj["verifier_key"] == SIGNER.vkey
    entry = obj["entries"][0]
    assert set(entry) == {"index", "entry", "leaf_hash", "inclusion_proof", "event"}
    assert json.loads(base64.b64decode(entry["entry"])) == entry["event"]
    assert all(len(base64.b64decode(h)) == 32 for h in entry["inclusion_proof"])


@pytest.mark.parametrize("form", ["pem", "vkey", "certificate"])
def test_trusted_key_can_be_given_in_every_documented_form(form: str) -> None:
    if form == "pem":
        text = public_key_pem(KEY.public_key())
    elif form == "vkey":
        text = SIGNER.vkey
    else:
        text = self_signed_certificate_pem()
    assert verify_receipt(make_receipt(), load_verifier(text)).checkpoint.origin == ORIGIN


def self_signed_certificate_pem() -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=1))
        .sign(KEY, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_non_ed25519_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_verifier(pem.decode())


def test_a_certificate_of_no_known_x509_version_is_refused_as_a_key() -> None:
    der = x509.load_pem_x509_certificate(self_signed_certificate_pem().encode()).public_bytes(
        serialization.Encoding.DER
    )
    broken = base64.encodebytes(of_unknown_version(der)).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{broken}-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="not a certificate"):
        load_verifier(pem)


def test_a_receipt_signed_by_another_key_fails_even_if_it_embeds_that_key() -> None:
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    obj = make_receipt(signer=impostor)
    with pytest.raises(GatewayError) as e:
        verify_receipt(obj, KEY.public_key())
    assert e.value.code == "proof_invalid"
    # Under the impostor's own key it is fine, and the note says whose key it names.
    assert verify_receipt(obj, impostor.public_key).entries


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _reencode(entry: dict[str, Any], **changes: Any) -> None:
    event = dict(entry["event"], **changes)
    data = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    entry["entry"] = base64.b64encode(data).decode()
    entry["event"] = event
    del entry["leaf_hash"]


TAMPERS = {
    "recipient changed in the entry bytes": lambda r: _reencode(
        r["entries"][1], recipient="000.02.05.H07"
    ),
    "entry bytes not canonical": lambda r: r["entries"][0].update(
        entry=base64.b64encode(base64.b64decode(r["entries"][0]["entry"]) + b" ").decode()
    ),
    "index moved": lambda r: r["entries"][0].update(index=4),
    "proof hash changed": lambda r: r["entries"][0]["inclusion_proof"].__setitem__(
        0, _flip_b64(r["entries"][0]["inclusion_proof"][0])
    ),
    "proof hash dropped": lambda r: r["entries"][0]["inclusion_proof"].pop(),
    "readable event differs": lambda r: r["entries"][0]["event"].update(sender="000.00.06.H07"),
    "leaf hash differs": lambda r: r["entries"][0].update(
        leaf_hash=_flip_b64(r["entries"][0]["leaf_hash"])
    ),
    "tree size differs from checkpoint": lambda r: r.update(tree_size=14),
    "checkpoint text changed": lambda r: r.update(
        checkpoint=r["checkpoint"].replace("\n13\n", "\n14\n")
    ),
    "no entries": lambda r: r.update(entries=[]),
    "wrong format": lambda r: r.update(format="something-else"),
    "entry not base64": lambda r: r["entries"][0].update(entry="***"),
    "entry not even ASCII": lambda r: r["entries"][0].update(entry="bản ghi"),
    "proof hash not ASCII": lambda r: r["entries"][0]["inclusion_proof"].__setitem__(0, "băm"),
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_any_change_to_a_receipt_makes_it_fail(tamper: Any) -> None:
    obj = copy.deepcopy(make_receipt())
    tamper(obj)
    with pytest.raises(GatewayError) as e:
        verify_receipt(obj, KEY.public_key())
    assert e.value.code == "proof_invalid"


def test_embedded_key_that_differs_from_the_trusted_one_is_noted() -> None:
    obj = make_receipt()
    obj["verifier_key"] = NoteSigner("someone.else/log", Ed25519PrivateKey.generate()).vkey
    verified = verify_receipt(obj, NoteVerifier.from_vkey(SIGNER.vkey))
    assert verified.notes and "someone.else/log" in verified.notes[0]
