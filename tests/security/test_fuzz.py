"""Crash-freedom: whatever bytes arrive, the envelope and the verifier answer with a package or a
catalogue error, never an unexpected exception. Hypothesis mutates valid signed letters and
status packets at the byte level (flips, cuts, insertions, repeats) and at the tree level
(elements removed, repeated, moved, emptied or given odd text), in both profiles."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from trustkit import NOW, SENDER, Pki, document_from, serialize

from gateway.client import build_status
from gateway.envelope import Organization, parse_package
from gateway.errors import CODES, PackageRejected
from gateway.trust import verify_package

KIT = Pki()
LETTER = KIT.signed(
    SENDER, document_from(SENDER, recipients=(Organization("000.00.06.H07", "Sở"),))
)
RESPONDER = "000.00.06.H07"
ODD_TEXT = [
    "",
    " ",
    "\u00a0",
    "x" * 300,
    "-1",
    "9999/99/99",
    "000.00.00.A00",
    "<>&\"'",
    "\U0001f600",
]

STATUS_PACKET = KIT.signed(
    RESPONDER,
    build_status(
        Organization(RESPONDER, "Sở Tài chính"),
        f"{SENDER}|{parse_package(LETTER).document_id}",
        "03",
        now=dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7))),
    ),
)


def outcome(work: Callable[[], object]) -> str:
    """ "accepted", or the refusal's code; anything else fails the test."""
    try:
        work()
    except PackageRejected as e:
        assert e.code in CODES, e
        return e.code
    return "accepted"


def every_reader(data: bytes) -> None:
    trust, directory = KIT.trust(), KIT.directory()
    for profile in ("strict", "compat"):
        outcome(lambda p=profile: parse_package(data, p))
        outcome(lambda p=profile: verify_package(data, trust, directory, p, NOW))


@st.composite
def byte_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        if not data:
            break
    return bytes(data)


@st.composite
def tree_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    root = etree.fromstring(original)
    elements = [el for el in root.iter(tag=etree.Element) if el is not root]
    for _ in range(draw(st.integers(1, 3))):
        el = draw(st.sampled_from(elements))
        parent = el.getparent()
        if parent is None:
            continue
        kind = draw(st.sampled_from(["remove", "repeat", "move", "empty", "text"]))
        if kind == "remove":
            parent.remove(el)
        elif kind == "repeat":
            el.addnext(copy.deepcopy(el))
        elif kind == "move":
            target = draw(st.sampled_from(elements))
            if target is not el and el not in target.iterancestors() and target is not parent:
                parent.remove(el)
                target.append(el)
        elif kind == "empty":
            for child in list(el):
                el.remove(child)
            el.text = None
        else:
            el.text = draw(st.sampled_from(ODD_TEXT))
        elements = [e for e in root.iter(tag=etree.Element) if e is not root]
        if not elements:
            break
    return serialize(root)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", ["letter", "status"])
@FUZZ
@given(data=st.data())
def test_mutated_bytes_get_an_answer_or_a_catalogue_code(kind: str, data: st.DataObject) -> None:
    original = LETTER if kind == "letter" else STATUS_PACKET
    every_reader(data.draw(byte_mutations(original)))


@pytest.mark.parametrize("kind", ["letter", "status"])
@FUZZ
@given(data=st.data())
def test_mutated_trees_get_an_answer_or_a_catalogue_code(kind: str, data: st.DataObject) -> None:
    original = LETTER if kind == "letter" else STATUS_PACKET
    every_reader(data.draw(tree_mutations(original)))


def test_the_originals_are_accepted() -> None:
    trust, directory = KIT.trust(), KIT.directory()
    for original in (LETTER, STATUS_PACKET):
        assert outcome(lambda o=original: verify_package(o, trust, directory, "strict", NOW)) == (
            "accepted"
        )


def test_a_certificate_with_a_key_of_an_unknown_type_is_a_signature_refusal() -> None:
    """Found by the atheris fuzzer (fuzz/fuzz_envelope.py): one byte changed in the key's
    algorithm identifier of the embedded certificate made cryptography raise
    UnsupportedAlgorithm from inside the verifier."""
    root = etree.fromstring(LETTER)
    cert = next(root.iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate"))
    der = base64.b64decode("".join((cert.text or "").split()))
    ec_public_key = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1
    assert ec_public_key in der
    cert.text = base64.b64encode(der.replace(ec_public_key, bytes.fromhex("0607298648ce3d0201")))
    tampered = serialize(root)
    trust, directory = KIT.trust(), KIT.directory()
    for profile in ("strict", "compat"):
        assert outcome(lambda p=profile: verify_package(tampered, trust, directory, p, NOW)) == (
            "signature_invalid"
        )


def test_a_certificate_whose_issuer_cannot_be_read_is_untrusted() -> None:
    """Found by the atheris fuzzer: a name the certificate parser reads only when asked made
    the explanation of an unverifiable chain raise ValueError."""
    root = etree.fromstring(LETTER)
    cert = next(root.iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate"))
    der = base64.b64decode("".join((cert.text or "").split()))
    issuer = x509.load_der_x509_certificate(der).issuer.public_bytes()
    assert der.count(issuer) == 1
    broken = bytearray(issuer)
    broken[-1] = 0xFF  # the last byte of the last attribute's string: not valid there
    cert.text = base64.b64encode(der.replace(issuer, bytes(broken)))
    tampered = serialize(root)
    trust, directory = KIT.trust(), KIT.directory()
    assert outcome(lambda: verify_package(tampered, trust, directory, "strict", NOW)) == (
        "cert_untrusted"
    )


def test_a_certificate_whose_extensions_cannot_be_read_is_untrusted() -> None:
    """Found by the atheris fuzzer: an extension whose inner length is past its end made the
    certificate's extensions raise ValueError when the usage was checked."""
    root = etree.fromstring(LETTER)
    cert = next(root.iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate"))
    der = bytearray(base64.b64decode("".join((cert.text or "").split())))
    basic_constraints = der.index(bytes.fromhex("0603551d13"))  # OID 2.5.29.19
    value = der.index(b"\x04", basic_constraints + 5)  # its OCTET STRING
    assert der[value + 2] == 0x30  # holding a SEQUENCE, whose length now runs past the end
    der[value + 3] += 40
    cert.text = base64.b64encode(bytes(der))
    tampered = serialize(root)
    trust, directory = KIT.trust(), KIT.directory()
    assert outcome(lambda: verify_package(tampered, trust, directory, "strict", NOW)) == (
        "cert_untrusted"
    )


def _with_leaf(change: Callable[[bytes], bytes]) -> bytes:
    root = etree.fromstring(LETTER)
    cert = next(root.iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate"))
    der = base64.b64decode("".join((cert.text or "").split()))
    changed = change(der)
    assert changed != der
    cert.text = base64.b64encode(changed)
    return serialize(root)


def _broken_subject(der: bytes) -> bytes:
    subject = bytearray(x509.load_der_x509_certificate(der).subject.public_bytes())
    broken = bytes(subject[:-1]) + b"\xff"
    return der.replace(bytes(subject), broken)


def _duplicate_extension(der: bytes) -> bytes:
    # the authority key identifier's OID (2.5.29.35) made the subject key identifier's (.14)
    return der.replace(bytes.fromhex("0603551d23"), bytes.fromhex("0603551d0e"))


@pytest.mark.parametrize(
    ("change", "code"),
    [(_broken_subject, "signature_invalid"), (_duplicate_extension, "cert_untrusted")],
)
def test_a_certificate_with_an_unreadable_name_or_extension_is_refused(
    change: Callable[[bytes], bytes], code: str
) -> None:
    """Found by the atheris fuzzer: names and extensions are parsed when first read, so a
    malformed one raised ValueError or DuplicateExtension from the signer checks (and, in
    compat, from reading the certificate's OrganIds)."""
    tampered = _with_leaf(change)
    trust, directory = KIT.trust(), KIT.directory()
    assert outcome(lambda: verify_package(tampered, trust, directory, "strict", NOW)) == code
    outcome(lambda: verify_package(tampered, trust, directory, "compat", NOW))
