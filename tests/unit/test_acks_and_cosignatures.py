"""The pure evidence pieces: signed acknowledgements (JWS with EC and RSA unit keys), the
acknowledgement policy, witness cosignatures (C2SP tlog-cosignature) and the witness's
refusal of a log that shrank or forked."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trustkit import NOW, OTHER, PINNED, SENDER, Pki, of_unknown_version

from gateway.config import LedgerSettings
from gateway.errors import GatewayError
from gateway.evidence.ack import Statement, ack_sha256, parse_ack, sign_ack, verify_ack
from gateway.evidence.witness import Refused, check_and_cosign
from gateway.ledger.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from gateway.ledger.cosignature import (
    Witness,
    WitnessKey,
    cosignatures_in,
    verify_cosignature,
    with_cosignatures,
    witness_of,
)
from gateway.ledger.merkle import leaf_hash, root_from_leaves
from gateway.service.evidence import received, signature_required

SHA = hashlib.sha256(b"letter").hexdigest()


def statement(recipient: str = SENDER, at: dt.datetime = NOW) -> Statement:
    return Statement("d-1-0", SHA, recipient, at)


@pytest.mark.parametrize("algorithm", ["ec", "rsa"])
def test_a_signed_acknowledgement_verifies_with_the_units_certificate(algorithm: str) -> None:
    kit = Pki(algorithm)  # type: ignore[arg-type]
    key, cert = kit.unit(SENDER)
    jws = sign_ack(statement(), key, cert, (kit.issuer,))
    verified = verify_ack(jws, kit.trust(), now=NOW)
    assert verified.statement == statement()
    assert SENDER in verified.signer.organ_ids and verified.sha256 == ack_sha256(jws)
    assert parse_ack(jws).algorithm == ("ES256" if algorithm == "ec" else "RS256")


def test_an_acknowledgement_whose_certificate_has_no_known_x509_version_is_refused() -> None:
    kit = Pki()
    key, cert = kit.unit(SENDER)
    header, payload, signature = sign_ack(statement(), key, cert).split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=="))
    der = base64.b64decode(fields["x5c"][0])
    fields["x5c"][0] = base64.b64encode(of_unknown_version(der)).decode()
    changed = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    with pytest.raises(GatewayError) as caught:
        parse_ack(f"{changed}.{payload}.{signature}")
    assert caught.value.code == "ack_invalid"


def test_a_changed_statement_or_a_foreign_certificate_is_refused() -> None:
    kit = Pki()
    key, cert = kit.unit(SENDER)
    jws = sign_ack(statement(), key, cert)
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["package_sha256"] = "0" * 64
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(GatewayError) as changed:
        verify_ack(f"{header}.{forged}.{signature}", kit.trust())
    assert changed.value.code == "ack_invalid"
    stranger = Pki()  # the same unit code, under another CA
    other_key, other_cert = stranger.unit(SENDER)
    with pytest.raises(GatewayError) as untrusted:
        verify_ack(sign_ack(statement(), other_key, other_cert), kit.trust())
    assert untrusted.value.code == "cert_untrusted"
    with pytest.raises(GatewayError) as revoked:
        verify_ack(jws, kit.trust(revoked=(cert,)))
    assert revoked.value.code == "cert_revoked"
    with pytest.raises(GatewayError) as future:
        verify_ack(jws, kit.trust(), now=NOW - dt.timedelta(hours=1))
    assert future.value.code == "ack_invalid"
    for bad in ("", "a.b", "x.y.z", jws + "."):
        with pytest.raises(GatewayError) as malformed:
            verify_ack(bad, kit.trust())
        assert malformed.value.code == "ack_invalid"


def test_the_policy_and_the_binding_of_the_signer_to_the_recipient() -> None:
    kit = Pki()
    directory, trust = kit.directory(), kit.trust()
    strict = LedgerSettings(signed_ack=(SENDER,))
    assert signature_required(strict, SENDER) and not signature_required(strict, OTHER)
    assert signature_required(LedgerSettings(signed_ack=("*",)), OTHER)
    with pytest.raises(GatewayError) as unsigned:
        received(strict, trust, directory, NOW, SENDER, None)
    assert unsigned.value.code == "ack_signature_required"
    assert received(strict, trust, directory, NOW, OTHER, None).details() == {"ack": "unsigned"}
    key, cert = kit.unit(SENDER)
    jws = sign_ack(statement(), key, cert)
    ok = received(strict, trust, directory, NOW, SENDER, jws)
    assert ok.details() == {"ack": "signed", "ack_sha256": ack_sha256(jws)}
    assert (ok.delivery_id, ok.package_sha256) == ("d-1-0", SHA)
    with pytest.raises(GatewayError, match=f"by {SENDER}, not {OTHER}"):
        received(strict, trust, directory, NOW, OTHER, jws)
    # PINNED's directory row pins one certificate: another one naming it does not speak for it.
    other_key, _ = kit.unit(OTHER)
    unpinned = kit.certificate(other_key, organ_id=PINNED)
    with pytest.raises(GatewayError, match="does not speak for"):
        received(
            strict,
            trust,
            directory,
            NOW,
            PINNED,
            sign_ack(statement(PINNED), other_key, unpinned),
        )


def test_a_cosignature_is_the_c2sp_line_and_names_its_witness() -> None:
    witness = Witness("witness.example", Ed25519PrivateKey.generate())
    assert WitnessKey.from_vkey(witness.vkey).vkey == witness.vkey
    assert base64.b64decode(witness.vkey.split("+", 2)[2])[:1] == b"\x04"
    log = NoteSigner("log.example", Ed25519PrivateKey.generate())
    note = Checkpoint("log.example", 3, root_from_leaves([leaf_hash(b"a")] * 3)).sign(log)
    text = note[: note.index("\n\n") + 1]
    line = witness.cosign(text, 1_700_000_000)
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64 and int.from_bytes(raw[4:12], "big") == 1_700_000_000
    cosigned = with_cosignatures(note, [line])
    assert NoteVerifier("log.example", log.public_key).verify(cosigned) == text
    (found,) = cosignatures_in(cosigned, [witness])
    assert (found.witness, found.timestamp) == ("witness.example", 1_700_000_000)
    stranger = Witness("witness.example", Ed25519PrivateKey.generate())
    assert cosignatures_in(cosigned, [stranger]) == []
    other = Checkpoint("log.example", 4, root_from_leaves([leaf_hash(b"a")] * 4)).sign(log)
    with pytest.raises(GatewayError, match="does not verify"):
        verify_cosignature(other, line, witness)


@pytest.mark.parametrize(
    "line",
    [
        "— witness.example AAAA!!",  # not base64
        "— witness.example 你好1234",  # not even ASCII
        "lorem ipsum",  # no em dash
        "— witness.example AAAA",  # too short
    ],
)
def test_a_malformed_cosignature_line_is_refused_as_an_invalid_proof(line: str) -> None:
    witness = Witness("witness.example", Ed25519PrivateKey.generate())
    with pytest.raises(GatewayError) as caught:
        witness_of(line, [witness])
    assert caught.value.code == "proof_invalid"


def test_the_witness_refuses_a_log_that_shrank_or_forked() -> None:
    me = Witness("witness.example", Ed25519PrivateKey.generate())
    log = NoteSigner("log.example", Ed25519PrivateKey.generate())
    key = NoteVerifier(log.name, log.public_key)
    leaves = [leaf_hash(bytes([i])) for i in range(8)]

    def note(n: int, forged: bool = False) -> str:
        tree = [leaf_hash(b"forged"), *leaves[1:n]] if forged else leaves[:n]
        return Checkpoint("log.example", n, root_from_leaves(tree)).sign(log)

    first = check_and_cosign(me, key, None, note(4), [], 1)
    assert first.checkpoint.size == 4
    with pytest.raises(Refused, match="SHRANK"):
        check_and_cosign(me, key, note(4), note(3), [], 2)
    with pytest.raises(Refused, match="FORKED"):
        check_and_cosign(me, key, note(4), note(4, forged=True), [], 2)
    other_log = NoteSigner("log.example", Ed25519PrivateKey.generate())
    foreign = Checkpoint("log.example", 5, root_from_leaves(leaves[:5])).sign(other_log)
    with pytest.raises(Refused, match="not signed by the log's key"):
        check_and_cosign(me, key, note(4), foreign, [], 2)
