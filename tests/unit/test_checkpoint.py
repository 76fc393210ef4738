"""C2SP signed notes (Ed25519) and tlog-checkpoint texts.

The PeterNeumann key, text and signed note are the published test vectors of Go's signed-note
implementation (golang.org/x/mod/sumdb/note, note_test.go), which C2SP signed-note codifies; the
checkpoint text is the example of the C2SP tlog-checkpoint specification.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import GatewayError
from gateway.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)

GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_BLOB = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
GO_SIGNATURE = f"— PeterNeumann {GO_SIG_BLOB}\n"
GO_ENOCH_SIGNATURE = (
    "— EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def go_signer() -> NoteSigner:
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))


def test_signer_reproduces_the_published_verifier_key_and_signature() -> None:
    signer = go_signer()
    assert signer.vkey == GO_VKEY
    assert signer.key_id == 0xC74F20A3
    assert signer.sign(GO_TEXT) == GO_TEXT + "\n" + GO_SIGNATURE


def test_published_note_verifies_and_unknown_signatures_are_ignored() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.verify(GO_TEXT + "\n" + GO_SIGNATURE + GO_ENOCH_SIGNATURE) == GO_TEXT


def test_note_without_a_signature_by_the_trusted_key_is_rejected() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    with pytest.raises(GatewayError, match="no signature by key PeterNeumann"):
        verifier.verify(GO_TEXT + "\n" + GO_ENOCH_SIGNATURE)
    # Same name, another key (different key id): ignored, so still no valid signature.
    other = NoteSigner("PeterNeumann", Ed25519PrivateKey.generate())
    with pytest.raises(GatewayError, match="no signature"):
        verifier.verify(other.sign(GO_TEXT))


def test_a_bad_signature_by_the_trusted_key_rejects_the_note() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    changed_text = GO_TEXT.replace("answer", "question")
    with pytest.raises(GatewayError, match="does not verify"):
        verifier.verify(changed_text + "\n" + GO_SIGNATURE)


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY[:-1],
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("PeterNeumann", "PeterNeuman"),
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(ValueError):
        NoteVerifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,  # no signatures
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_SIGNATURE[:-1],  # no final newline
        "\x01" + GO_TEXT + "\n" + GO_SIGNATURE,
        GO_TEXT + "\n" + f"— Bad Name {GO_SIG_BLOB}\n",
        GO_TEXT + "\n" + GO_SIGNATURE + "Unexpected line.\n",
        GO_TEXT + "\n" + "— PeterNeumann !!!notbase64\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(GatewayError) as e:
        NoteVerifier.from_vkey(GO_VKEY).verify(note)
    assert e.value.code == "proof_invalid"


def test_note_text_may_contain_blank_lines_the_last_one_separates() -> None:
    text = "first\n\nthird\n"
    note = go_signer().sign(text)
    assert parse_note(note).text == text
    assert NoteVerifier.from_vkey(GO_VKEY).verify(note) == text


def test_checkpoint_text_is_the_c2sp_format() -> None:
    head = parse_checkpoint(C2SP_EXAMPLE)
    assert head.origin == "example.com/behind-the-sofa"
    assert head.size == 20852163
    assert head.text == C2SP_EXAMPLE


def test_checkpoint_extension_lines_are_allowed_and_ignored() -> None:
    head = parse_checkpoint(C2SP_EXAMPLE + "some extension\n")
    assert head.size == 20852163


@pytest.mark.parametrize(
    "text",
    [
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # bad padding
        "origin\n12\nAAAA\n",  # not 32 bytes
        "origin\n12\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\nx\n",  # empty line
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(GatewayError):
        parse_checkpoint(text)


def test_signed_checkpoint_round_trip_and_origin_binding() -> None:
    key = Ed25519PrivateKey.generate()
    signer = NoteSigner("gateway.example/ledger", key)
    head = Checkpoint("gateway.example/ledger", 42, bytes(range(32)))
    note = head.sign(signer)
    assert note.startswith(head.text + "\n— gateway.example/ledger ")
    verifier = NoteVerifier("gateway.example/ledger", key.public_key())
    assert open_checkpoint(note, verifier, origin="gateway.example/ledger") == head
    assert NoteVerifier.from_vkey(signer.vkey).verify(note) == head.text
    with pytest.raises(GatewayError, match="origin"):
        open_checkpoint(note, verifier, origin="another/log")
    forged = note.replace("\n42\n", "\n43\n")
    with pytest.raises(GatewayError, match="does not verify"):
        open_checkpoint(forged, verifier)


def test_key_names_with_spaces_or_plus_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    for name in ("", "a b", "a+b"):
        with pytest.raises(ValueError):
            NoteSigner(name, key)
