"""verify_package: round trips, interoperability with signxml used directly, the compat
states, the sender checks, and the model read from the signed XML."""

from __future__ import annotations

import dataclasses
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from samples import sample_document, sample_status, with_dummy_signature
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier
from trustkit import (
    NOW,
    OTHER,
    PINNED,
    SENDER,
    SUSPENDED,
    UNLISTED,
    Pki,
    document_from,
    serialize,
    sign_as,
    tree,
)

from gateway.directory import Directory, load_directory
from gateway.envelope import Profile, build_package, names, parse_package
from gateway.envelope.model import Attachment
from gateway.errors import PackageRejected
from gateway.trust import (
    SignatureState,
    fingerprint,
    init_keys,
    load_trust,
    load_unit_signer,
    sign_package,
    verify_package,
)
from gateway.trust.verify import _TreeVerifier, verify_signature

STRICT = Profile.STRICT
COMPAT = Profile.COMPAT


@pytest.fixture(scope="module")
def kit() -> Pki:
    return Pki()


def rejected(data: bytes, kit: Pki, profile: Profile = STRICT, **kwargs: object) -> PackageRejected:
    trust = kwargs.pop("trust", None) or kit.trust()
    with pytest.raises(PackageRejected) as caught:
        verify_package(data, trust, kit.directory(), profile, NOW)  # type: ignore[arg-type]
    return caught.value


def signxml_sign(data: bytes, key: object, cert: object, **options: object) -> bytes:
    """Sign with signxml directly, as an independent system would (placeholder in the header)."""
    root = etree.fromstring(data)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None
    etree.SubElement(header, names.DS_SIGNATURE, {"Id": "placeholder"}, nsmap={"ds": names.DS_NS})
    signed = XMLSigner(**options).sign(root, key=key, cert=[cert])  # type: ignore[arg-type]
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


class LegacySigner(XMLSigner):
    """signxml refuses to sign with SHA-1; legacy systems still do."""

    def check_deprecated_methods(self) -> None:
        return None


def test_every_sample_unit_signs_and_verifies(tmp_path: Path) -> None:
    directory = load_directory()
    init_keys(tmp_path, directory)
    trust = load_trust(tmp_path)
    for unit in directory:
        key, cert = load_unit_signer(tmp_path, unit.code)
        data = sign_package(build_package(document_from(unit.code)), key, cert)
        if not unit.active:
            with pytest.raises(PackageRejected) as caught:
                verify_package(data, trust, directory)
            assert caught.value.code == "sender_suspended", unit.code
            continue
        result = verify_package(data, trust, directory)
        assert result.signature_state is SignatureState.VALID, unit.code
        assert result.signer == unit.code
        assert result.package.sender.organ_id == unit.code
    assert len(directory) == 809


def test_signed_package_reads_back_as_the_model(kit: Pki) -> None:
    package = document_from(SENDER)
    result = verify_package(kit.signed(SENDER, package), kit.trust(), kit.directory(), STRICT, NOW)
    assert result.valid
    assert result.package == package
    assert result.package.attachments[0].data == package.attachments[0].data
    assert result.cert_sha256 == fingerprint(kit.unit(SENDER)[1])
    assert result.problem is None and result.message is None


def test_a_scan_verified_from_its_file_is_not_held_decoded_until_it_is_read(
    kit: Pki, tmp_path: Path
) -> None:
    """A large letter spooled to a file keeps no decoded copy of its attachments between its
    verification (whose signature check is a scan's memory peak) and the reading of its
    model; the model then has them, and the bytes as sent."""
    scan = os.urandom(4 << 20)
    attachment = Attachment("cid:scan", "scan.pdf", "application/pdf", scan)
    data = kit.signed(SENDER, document_from(SENDER, attachments=(attachment,)))
    path = tmp_path / "scan.xml"
    path.write_bytes(data)
    with path.open("rb") as spooled:
        tracemalloc.start()
        try:
            result = verify_package(spooled, kit.trust(), kit.directory(), STRICT, NOW)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < len(scan) // 4
        assert result.package.attachments[0].data == scan
        assert result.package.raw == data


def test_an_element_with_a_name_outside_ascii_in_signed_info_is_signature_invalid(
    kit: Pki,
) -> None:
    """Found by the coverage-guided fuzzer, in compat (strict's schema refuses the element
    first): signxml copies SignedInfo by serializing it as ASCII, which cannot spell such a
    name, and parsing the copy failed with an XMLSyntaxError that escaped."""
    root = tree(kit.signed())
    (transforms,) = root.iter(f"{{{names.DS_NS}}}Transforms")
    transforms[1].tag = "dsƨransform"
    assert rejected(serialize(root), kit, COMPAT).code == "signature_invalid"


def test_signature_is_the_last_child_of_the_header_with_the_required_shape(kit: Pki) -> None:
    root = tree(kit.signed())
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None
    assert header[-1].tag == names.DS_SIGNATURE
    ds = {"ds": names.DS_NS}
    refs = header[-1].findall("ds:SignedInfo/ds:Reference", ds)
    assert [r.get("URI") for r in refs] == [""]
    transforms = [t.get("Algorithm") for t in refs[0].findall("ds:Transforms/ds:Transform", ds)]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    method = header[-1].find("ds:SignedInfo/ds:SignatureMethod", ds)
    assert method is not None
    assert method.get("Algorithm") == SignatureMethod.ECDSA_SHA256.value
    assert len(header[-1].findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", ds)) == 1


def test_rsa_signed_package_verifies() -> None:
    kit = Pki("rsa")
    result = verify_package(kit.signed(), kit.trust(), kit.directory(), STRICT, NOW)
    assert result.valid
    method = tree(kit.signed()).find(".//{*}SignatureMethod")
    assert method is not None and method.get("Algorithm") == SignatureMethod.RSA_SHA256.value


def test_signed_status_packet_verifies(kit: Pki) -> None:
    status = sample_status("03")
    data = sign_as(status, *kit.unit(status.sender.organ_id))
    result = verify_package(data, kit.trust(), kit.directory(), STRICT, NOW)
    assert result.valid and result.package == status and result.signer == OTHER


def test_package_signed_by_signxml_directly_verifies(kit: Pki) -> None:
    key, cert = kit.unit(SENDER)
    data = signxml_sign(
        build_package(document_from(SENDER)), key, cert, signature_algorithm="ecdsa-sha256"
    )
    result = verify_package(data, kit.trust(), kit.directory(), STRICT, NOW)
    assert result.valid and result.signer == SENDER


def test_our_signed_package_verifies_with_signxml_directly(kit: Pki, tmp_path: Path) -> None:
    _, cert = kit.unit(SENDER)
    data = kit.signed()
    XMLVerifier().verify(data, x509_cert=cert)
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(kit.bundle())
    config = SignatureConfiguration(verification_time=NOW)
    result = XMLVerifier().verify(data, ca_pem_file=str(bundle), expect_config=config)
    assert result.signed_xml is not None  # type: ignore[union-attr]


def test_the_verifier_hooks_are_methods_signxml_still_has() -> None:
    # The verifier overrides signxml's tree copies and certificate-date check; a release that
    # renamed them would silently undo that (slower, and expired certificates would read as
    # signature_invalid), so the hooks must still be signxml's own methods.
    hooks = [name for name, value in vars(_TreeVerifier).items() if callable(value)]
    assert {"_tostring", "_fromstring", "_check_cert_validity"} <= set(hooks)
    for name in hooks:
        assert callable(getattr(XMLVerifier, name, None)), name


def test_sign_refuses_an_already_signed_package(kit: Pki) -> None:
    with pytest.raises(PackageRejected) as caught:
        sign_package(kit.signed(), *kit.unit(SENDER))
    assert caught.value.code == "signature_ambiguous"


def test_sign_refuses_what_is_not_edxml(kit: Pki) -> None:
    with pytest.raises(PackageRejected) as caught:
        sign_package(b"<root/>", *kit.unit(SENDER))
    assert caught.value.code == "not_edxml"


def test_unsigned_package_is_signature_missing_in_strict(kit: Pki) -> None:
    assert rejected(build_package(sample_document()), kit).code == "signature_missing"


def test_tampered_content_is_signature_invalid_in_both_profiles(kit: Pki) -> None:
    data = kit.signed().replace(
        b"Nguy\xe1\xbb\x85n V\xc4\x83n An", b"Nguy\xe1\xbb\x85n V\xc4\x83n Ba"
    )
    assert data != kit.signed()
    assert rejected(data, kit).code == "signature_invalid"
    assert rejected(data, kit, COMPAT).code == "signature_invalid"


def test_tampered_signature_value_is_signature_invalid(kit: Pki) -> None:
    root = tree(kit.signed())
    value = root.find(".//{*}SignatureValue")
    assert value is not None and value.text is not None
    value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    assert rejected(serialize(root), kit).code == "signature_invalid"
    assert rejected(serialize(root), kit, COMPAT).code == "signature_invalid"


def test_placeholder_signature_is_signature_invalid(kit: Pki) -> None:
    data = with_dummy_signature(build_package(sample_document()))
    root = tree(data)
    sig = root.find(".//{*}Signature")
    assert sig is not None
    key_info = etree.SubElement(sig, f"{{{names.DS_NS}}}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{{{names.DS_NS}}}X509Data")
    cert = kit.unit(SENDER)[1].public_bytes(serialization.Encoding.PEM).decode()
    etree.SubElement(x509_data, f"{{{names.DS_NS}}}X509Certificate").text = "".join(
        cert.splitlines()[1:-1]
    )
    assert rejected(serialize(root), kit).code == "signature_invalid"


def test_compat_unsigned_package_is_recorded_absent(kit: Pki) -> None:
    result = verify_package(
        build_package(sample_document()), kit.trust(), kit.directory(), COMPAT, NOW
    )
    assert result.signature_state is SignatureState.ABSENT
    assert result.signer is None and result.cert_sha256 is None
    assert result.problem == "signature_missing"
    assert "signature_absent" in [w.code for w in result.package.warnings]


def test_compat_verifies_a_signed_package_whose_header_deviates(kit: Pki) -> None:
    """The signer wrote a header without Subject and with an element of its own: compat
    verifies the signature and reads the signed header as it is, a warning for each."""
    root = tree(build_package(document_from(SENDER)))
    message = root.find(f".//{names.MESSAGE_HEADER}")
    subject = root.find(f".//{names.tag('Subject')}")
    assert message is not None and subject is not None
    message.remove(subject)
    etree.SubElement(message, names.tag("Urgency")).text = "high"
    key, cert = kit.unit(SENDER)
    data = sign_package(serialize(root), key, cert)
    result = verify_package(data, kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.signature_state is SignatureState.VALID and result.signer == SENDER
    assert result.package.subject is None and result.package.sender.organ_id == SENDER
    assert {w.code for w in result.package.warnings} == {"element_missing", "element_unknown"}
    assert rejected(data, kit).code == "schema_invalid"


def test_compat_signature_in_another_namespace_is_not_xmldsig(kit: Pki) -> None:
    root = tree(build_package(sample_document()))
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None
    etree.SubElement(header, names.tag("Signature")).text = "AAAA"
    result = verify_package(serialize(root), kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.signature_state is SignatureState.NOT_XMLDSIG
    assert rejected(serialize(root), kit).code == "signature_missing"


def test_compat_sha1_signature_is_weak_algorithm_and_strict_rejects_it(kit: Pki) -> None:
    key, cert = kit.unit(SENDER)
    package = document_from(SENDER)
    data = _legacy_signed(build_package(package), key, cert)
    assert rejected(data, kit).code == "signature_weak_algorithm"
    result = verify_package(data, kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.signature_state is SignatureState.WEAK_ALGORITHM
    assert result.problem == "signature_weak_algorithm"
    assert result.package == package
    assert [w.code for w in result.package.warnings] == ["signature_weak_algorithm"]


def _legacy_signed(data: bytes, key: object, cert: object) -> bytes:
    root = etree.fromstring(data)
    header = root.find(f"{names.ENVELOPE}/{names.HEADER}")
    assert header is not None
    etree.SubElement(header, names.DS_SIGNATURE, {"Id": "placeholder"}, nsmap={"ds": names.DS_NS})
    signer = LegacySigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA1, digest_algorithm=DigestAlgorithm.SHA1
    )
    signed = signer.sign(root, key=key, cert=[cert])  # type: ignore[arg-type]
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def test_compat_tampered_sha1_signature_is_still_rejected(kit: Pki) -> None:
    data = _legacy_signed(build_package(document_from(SENDER)), *kit.unit(SENDER))
    data = data.replace(b"125/SNV-VP", b"126/SNV-VP", 1)
    assert rejected(data, kit, COMPAT).code == "signature_invalid"


def test_compat_untrusted_certificate_is_recorded_with_the_strict_code(kit: Pki) -> None:
    stranger = Pki()
    package = document_from(SENDER)
    data = sign_as(package, *stranger.unit(SENDER))
    assert rejected(data, kit).code == "cert_untrusted"
    result = verify_package(data, kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.signature_state is SignatureState.UNTRUSTED
    assert result.problem == "cert_untrusted"
    assert result.signer == SENDER  # the certificate names it, but nothing vouches for it
    assert result.package == package  # still read from the signed XML
    assert [w.code for w in result.package.warnings] == ["signature_untrusted"]


def test_compat_revoked_and_mismatched_certificates_are_untrusted(kit: Pki) -> None:
    _, cert = kit.unit(SENDER)
    revoked = kit.trust(revoked=(cert,))
    result = verify_package(kit.signed(), revoked, kit.directory(), COMPAT, NOW)
    assert (result.signature_state, result.problem) == (SignatureState.UNTRUSTED, "cert_revoked")
    data = sign_as(document_from(SENDER), *kit.unit(OTHER))
    result = verify_package(data, kit.trust(), kit.directory(), COMPAT, NOW)
    assert (result.signature_state, result.problem) == (SignatureState.UNTRUSTED, "sender_mismatch")
    assert result.signer == OTHER


def test_compat_accepts_a_sender_outside_the_directory_but_strict_does_not(kit: Pki) -> None:
    data = kit.signed(UNLISTED)
    assert rejected(data, kit).code == "sender_unknown"
    result = verify_package(data, kit.trust(), kit.directory(), COMPAT, NOW)
    assert result.valid and result.signer == UNLISTED


def test_suspended_sender_is_rejected_in_both_profiles(kit: Pki) -> None:
    data = kit.signed(SUSPENDED)
    assert rejected(data, kit).code == "sender_suspended"
    assert rejected(data, kit, COMPAT).code == "sender_suspended"


def test_pinned_unit_accepts_its_pinned_certificate_only(kit: Pki) -> None:
    result = verify_package(kit.signed(PINNED), kit.trust(), kit.directory(), STRICT, NOW)
    assert result.valid and result.signer == PINNED
    # A second valid certificate naming the unit in its subject is not the pinned one.
    key = kit.unit(PINNED)[0]
    other = kit.certificate(key, organ_id=PINNED)
    data = sign_as(document_from(PINNED), key, other)
    error = rejected(data, kit)
    assert error.code == "sender_mismatch" and "not pinned" in error.message


def test_pin_binds_a_certificate_whose_subject_names_another_unit(kit: Pki) -> None:
    key, cert = kit.unit(OTHER)
    units = [
        dataclasses.replace(u, cert_sha256=(fingerprint(cert),)) if u.code == SENDER else u
        for u in kit.directory()
    ]
    data = sign_as(document_from(SENDER), key, cert)
    result = verify_package(data, kit.trust(), Directory(units), STRICT, NOW)
    assert result.valid and result.signer == SENDER


def test_verify_includes_everything_validate_checks(kit: Pki) -> None:
    package = document_from(SENDER, recipients=())
    data = sign_as(package, *kit.unit(SENDER))
    with pytest.raises(PackageRejected) as parsed:
        parse_package(data)
    assert rejected(data, kit).code == parsed.value.code == "recipient_missing"


def test_hostile_xml_is_refused_before_any_signature_work(kit: Pki) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert rejected(bomb, kit).code == "xml_forbidden_construct"
    assert rejected(b"<root/>", kit).code == "not_edxml"


def test_chain_is_built_once_per_certificate(kit: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    trust = kit.trust()
    calls: list[str] = []
    build = trust._build_chain

    def counting(*args: object) -> object:
        calls.append("built")
        return build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(trust, "_build_chain", counting)
    directory = kit.directory()
    for _ in range(5):
        assert verify_package(kit.signed(SENDER), trust, directory, STRICT, NOW).valid
        assert verify_package(kit.signed(OTHER), trust, directory, STRICT, NOW).valid
    assert calls == ["built", "built"]


def test_cached_chain_is_rechecked_when_time_leaves_its_validity(kit: Pki) -> None:
    trust = kit.trust()
    directory = kit.directory()
    assert verify_package(kit.signed(), trust, directory, STRICT, NOW).valid
    later = NOW.replace(year=NOW.year + 3)
    assert rejected_at(kit.signed(), trust, kit, later).code == "cert_expired"


def rejected_at(data: bytes, trust: object, kit: Pki, now: object) -> PackageRejected:
    with pytest.raises(PackageRejected) as caught:
        verify_package(data, trust, kit.directory(), STRICT, now)  # type: ignore[arg-type]
    return caught.value


def test_verify_signature_returns_the_signed_tree_and_signer(kit: Pki) -> None:
    content = verify_signature(kit.signed(), kit.trust(), STRICT, NOW)
    assert content.state is SignatureState.VALID
    assert content.organ_ids == (SENDER,)
    # the signed XML, from which the enveloped transform removed the signature
    assert content.tree.find(f"{names.ENVELOPE}/{names.HEADER}/{names.DS_SIGNATURE}") is None


def test_the_verified_model_is_the_envelopes_reading_of_the_signed_content(kit: Pki) -> None:
    """verify_package reads its model from the signed XML: the same model, field by field, as
    the envelope reads from the package's bytes, and read only when first asked for."""
    from gateway.envelope import parse_package
    from gateway.envelope.model import Package

    data = kit.signed(SENDER, document_from(SENDER))
    fast = verify_package(data, kit.trust(), kit.directory(), STRICT, NOW)
    content = verify_signature(data, kit.trust(), STRICT, NOW)
    checked = parse_package(data, STRICT)
    for f in dataclasses.fields(Package):
        assert getattr(fast.package, f.name) == getattr(checked, f.name), f.name
    assert (fast.signature_state, fast.signer, fast.cert_sha256) == (
        content.state,
        SENDER,
        content.sha256,
    )
    assert (fast.problem, fast.message, fast.certificate) == (None, None, content.certificate)


def _change_subject(root: etree._Element) -> None:
    subject = root.find(f".//{{{names.NS}}}Subject")
    assert subject is not None
    subject.text = "changed after signing"


def _add_comment(root: etree._Element) -> None:
    message = root.find(f".//{names.MESSAGE_HEADER}")
    assert message is not None
    message.append(etree.Comment("unsigned"))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(_change_subject, "signature_invalid", id="content-changed"),
        pytest.param(_add_comment, "signature_ambiguous", id="comment-added"),
    ],
)
def test_a_fault_after_the_schema_is_named_by_the_checked_path(
    kit: Pki, change: Callable[[etree._Element], None], code: str
) -> None:
    """Schema-valid packages that fail later (the signature, the unsigned-nodes rule) leave
    the fast path and get the checked path's precise code."""
    root = etree.fromstring(kit.signed(SENDER, document_from(SENDER)))
    change(root)
    assert rejected(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), kit).code == code
