"""Signature wrapping (XSW) on our own envelopes: each shape is rejected with a precise code,
and no model is ever read from content the signature does not cover.

Every shape starts from a package validly signed by SENDER and changes it the way an attacker
who holds it (but not SENDER's key) would. Where an attacker could also sign, they sign with
another unit's valid key, so that only the shape is at fault.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from lxml import etree
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier
from trustkit import NOW, OTHER, SENDER, Pki, document_from, serialize, sign_as

from gateway.envelope import Organization, Profile, build_package, build_tree, names
from gateway.errors import PackageRejected
from gateway.trust import verify_package

DS = {"ds": names.DS_NS, "e": names.NS}
STRICT = Profile.STRICT
COMPAT = Profile.COMPAT
ATTACKER_SUBJECT = "Chuyển khoản gấp 5 tỷ đồng"  # what the attacker wants read


@pytest.fixture(scope="module")
def kit() -> Pki:
    return Pki()


def header(root: etree._Element) -> etree._Element:
    found = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert found is not None
    return found


def signature(root: etree._Element) -> etree._Element:
    found = root.find(f".//{names.DS_SIGNATURE}")
    assert found is not None
    return found


def attacker_header() -> etree._Element:
    """An unsigned MessageHeader: SENDER apparently writes to OTHER with another subject."""
    forged = build_tree(document_from(SENDER, subject=ATTACKER_SUBJECT))
    found = forged.find(f"{names.ENVELOPE}/{names.HEADER}/{names.MESSAGE_HEADER}")
    assert found is not None
    return found


# --- the shapes: each takes the signed tree (and the kit) and returns the attack bytes ---


def moved_under_new_parent(root: etree._Element, kit: Pki) -> bytes:
    """A new package with the attacker's header; the signed one nested in its body."""
    outer = build_tree(document_from(SENDER, subject=ATTACKER_SUBJECT))
    body = outer.find(f"{names.ENVELOPE}/{names.BODY}")
    assert body is not None
    body.append(root)
    return serialize(outer)


def second_header_before(root: etree._Element, kit: Pki) -> bytes:
    header(root).insert(0, attacker_header())
    return serialize(root)


def second_header_beside(root: etree._Element, kit: Pki) -> bytes:
    hdr = header(root)
    hdr.insert(hdr.index(hdr.find(names.MESSAGE_HEADER)) + 1, attacker_header())  # type: ignore[arg-type]
    return serialize(root)


def duplicated_signature(root: etree._Element, kit: Pki) -> bytes:
    header(root).append(copy.deepcopy(signature(root)))
    return serialize(root)


def reference_to_an_id(root: etree._Element, kit: Pki) -> bytes:
    """Signed by OTHER's valid key, but only over one element (Reference URI="#…")."""
    unsigned = build_tree(document_from(SENDER, subject=ATTACKER_SUBJECT))
    trace = unsigned.find(
        f"{names.ENVELOPE}/{names.HEADER}/{names.MESSAGE_HEADER}/{{{names.NS}}}To"
    )
    assert trace is not None
    trace.set("Id", "signed-part")
    etree.SubElement(
        header(unsigned), names.DS_SIGNATURE, {"Id": "placeholder"}, nsmap={"ds": names.DS_NS}
    )
    key, cert = kit.unit(OTHER)
    signed = XMLSigner(signature_algorithm="ecdsa-sha256").sign(
        unsigned, key=key, cert=[cert], reference_uri="signed-part"
    )
    return serialize(signed)


def extra_reference(root: etree._Element, kit: Pki) -> bytes:
    reference = root.find(".//ds:SignedInfo/ds:Reference", DS)
    assert reference is not None
    extra = copy.deepcopy(reference)
    extra.set("URI", "#attacker")
    reference.addnext(extra)
    return serialize(root)


def comment_in_organ_id(root: etree._Element, kit: Pki) -> bytes:
    """Exclusive C14N drops comments, so the digest still matches; a reader of the parsed
    tree that takes .text would see only '000.00.0'."""
    organ_id = root.find(".//e:MessageHeader/e:From/e:OrganId", DS)
    assert organ_id is not None and organ_id.text == SENDER
    organ_id.text = SENDER[:8]
    comment = etree.Comment("")
    comment.tail = SENDER[8:]
    organ_id.append(comment)
    return serialize(root)


def signature_moved_to_envelope(root: etree._Element, kit: Pki) -> bytes:
    sig = signature(root)
    envelope = root.find(names.ENVELOPE)
    assert envelope is not None
    envelope.append(sig)
    return serialize(root)


def signature_moved_to_root(root: etree._Element, kit: Pki) -> bytes:
    root.append(signature(root))
    return serialize(root)


def signature_before_message_header(root: etree._Element, kit: Pki) -> bytes:
    header(root).insert(0, signature(root))
    return serialize(root)


def signature_over_earlier_copy(root: etree._Element, kit: Pki) -> bytes:
    """The signature of the genuine package, put into a later, different one."""
    later = build_tree(document_from(SENDER, subject=ATTACKER_SUBJECT))
    header(later).append(signature(root))
    return serialize(later)


def signed_copy_inside_signature_object(root: etree._Element, kit: Pki) -> bytes:
    """The genuine package kept inside ds:Object, the attacker's content in its place."""
    sig = signature(root)
    genuine = copy.deepcopy(root)
    header(genuine).remove(signature(genuine))
    obj = etree.SubElement(sig, f"{{{names.DS_NS}}}Object")
    obj.append(genuine)
    subject = root.find(".//e:MessageHeader/e:Subject", DS)
    assert subject is not None
    subject.text = ATTACKER_SUBJECT
    return serialize(root)


def recipient_added(root: etree._Element, kit: Pki) -> bytes:
    to = root.find(".//e:MessageHeader/e:To", DS)
    assert to is not None
    extra = copy.deepcopy(to)
    organ_id = extra.find("e:OrganId", DS)
    assert organ_id is not None
    organ_id.text = "000.01.05.H07"
    to.addnext(extra)
    return serialize(root)


Shape = Callable[[etree._Element, Pki], bytes]

# shape, strict code, compat code (None: compat accepts it and reads the signed original)
SHAPES: list[tuple[Shape, str, str | None]] = [
    (moved_under_new_parent, "signature_ambiguous", "signature_ambiguous"),
    (second_header_before, "signature_invalid", "signature_invalid"),
    (second_header_beside, "signature_invalid", "signature_invalid"),
    (duplicated_signature, "signature_ambiguous", "signature_ambiguous"),
    (reference_to_an_id, "signature_ambiguous", "signature_ambiguous"),
    (extra_reference, "signature_ambiguous", "signature_ambiguous"),
    (comment_in_organ_id, "signature_ambiguous", None),
    (signature_moved_to_envelope, "signature_ambiguous", "signature_ambiguous"),
    (signature_moved_to_root, "signature_ambiguous", "signature_ambiguous"),
    (signature_before_message_header, "signature_ambiguous", "schema_invalid"),
    (signature_over_earlier_copy, "signature_invalid", "signature_invalid"),
    (signed_copy_inside_signature_object, "signature_invalid", "signature_invalid"),
    (recipient_added, "signature_invalid", "signature_invalid"),
]


@pytest.mark.parametrize(
    ("shape", "strict_code", "compat_code"), SHAPES, ids=lambda v: getattr(v, "__name__", v)
)
def test_wrapping_shape_is_rejected_with_a_precise_code(
    kit: Pki, shape: Shape, strict_code: str, compat_code: str | None
) -> None:
    original = document_from(SENDER)
    attack = shape(etree.fromstring(kit.signed(SENDER, original)), kit)
    with pytest.raises(PackageRejected) as strict:
        verify_package(attack, kit.trust(), kit.directory(), STRICT, NOW)
    assert strict.value.code == strict_code, strict.value
    if compat_code is not None:
        with pytest.raises(PackageRejected) as compat:
            verify_package(attack, kit.trust(), kit.directory(), COMPAT, NOW)
        assert compat.value.code == compat_code, compat.value
    else:
        # Accepted in compat only because everything it reads is what SENDER signed.
        result = verify_package(attack, kit.trust(), kit.directory(), COMPAT, NOW)
        assert result.valid
        assert result.package == original
        assert result.package.subject != ATTACKER_SUBJECT


def test_comment_injection_would_fool_a_reader_of_the_unsigned_tree(kit: Pki) -> None:
    attack = comment_in_organ_id(etree.fromstring(kit.signed()), kit)
    naive = etree.fromstring(attack).find(".//e:MessageHeader/e:From/e:OrganId", DS)
    assert naive is not None and naive.text == SENDER[:8]
    result = verify_package(attack, kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.package.sender.organ_id == SENDER


def test_wrapped_package_is_also_refused_by_validate_placement_rules(kit: Pki) -> None:
    """The nested signature sits last in *an* edXMLHeader; only the top one counts."""
    attack = moved_under_new_parent(etree.fromstring(kit.signed()), kit)
    with pytest.raises(PackageRejected) as caught:
        verify_package(attack, kit.trust(), kit.directory(), STRICT, NOW)
    assert "own edXMLHeader" in caught.value.message


def test_reference_with_valid_signature_of_its_own_is_not_a_crypto_failure(kit: Pki) -> None:
    """The Id-reference shape is a correct signature by a trusted key: refused for its shape."""
    attack = reference_to_an_id(etree.fromstring(kit.signed()), kit)
    XMLVerifier().verify(attack, x509_cert=kit.unit(OTHER)[1])  # signxml alone accepts it


def test_signer_of_another_unit_cannot_speak_for_the_sender(kit: Pki) -> None:
    """Re-signing the attacker's content with another unit's valid key: sender_mismatch."""
    forged = document_from(SENDER, subject=ATTACKER_SUBJECT)
    key, cert = kit.unit(OTHER)
    with pytest.raises(PackageRejected) as caught:
        verify_package(sign_as(forged, key, cert), kit.trust(), kit.directory(), STRICT, NOW)
    assert caught.value.code == "sender_mismatch"


def test_from_of_another_unit_is_bound_to_the_signed_content(kit: Pki) -> None:
    """Changing From/OrganId to the signer's own code after signing breaks the digest."""
    root = etree.fromstring(
        kit.signed(SENDER, document_from(SENDER, recipients=(Organization(OTHER, "Sở Tài chính"),)))
    )
    organ_id = root.find(".//e:MessageHeader/e:From/e:OrganId", DS)
    assert organ_id is not None
    organ_id.text = OTHER
    with pytest.raises(PackageRejected) as caught:
        verify_package(serialize(root), kit.trust(), kit.directory(), STRICT, NOW)
    assert caught.value.code == "signature_invalid"


def test_unsigned_package_builds_no_model_in_strict(kit: Pki) -> None:
    with pytest.raises(PackageRejected) as caught:
        verify_package(
            build_package(document_from(SENDER)), kit.trust(), kit.directory(), STRICT, NOW
        )
    assert caught.value.code == "signature_missing"
