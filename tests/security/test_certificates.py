"""Signer certificates that must not be accepted, each with its precise code, and the trust
store's own rules (CRL freshness and issuer, roots, intermediates from KeyInfo)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from lxml import etree
from trustkit import (
    NOW,
    OTHER,
    SENDER,
    Pki,
    document_from,
    ec_key,
    of_unknown_version,
    serialize,
    sha1_certificate,
    sign_as,
    tree,
)

from gateway.envelope import Profile, build_package, names
from gateway.errors import ConfigError, PackageRejected
from gateway.trust import SignatureState, TrustStore, pki, sign_package, verify_package
from gateway.trust.store import CHAIN_CACHE_SIZE

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def kit() -> Pki:
    return Pki()


def code_of(data: bytes, kit: Pki, trust: TrustStore | None = None, now: dt.datetime = NOW) -> str:
    with pytest.raises(PackageRejected) as caught:
        verify_package(data, trust or kit.trust(), kit.directory(), Profile.STRICT, now)
    return caught.value.code


def signed_with(kit: Pki, cert: x509.Certificate, key: object | None = None) -> bytes:
    return sign_as(document_from(SENDER), key or kit.unit(SENDER)[0], cert)  # type: ignore[arg-type]


def test_another_units_valid_certificate_is_sender_mismatch(kit: Pki) -> None:
    assert code_of(sign_as(document_from(SENDER), *kit.unit(OTHER)), kit) == "sender_mismatch"


def test_revoked_certificate_is_cert_revoked(kit: Pki) -> None:
    _, cert = kit.unit(SENDER)
    assert code_of(kit.signed(), kit, kit.trust(revoked=(cert,))) == "cert_revoked"
    # The same package verifies against the CRL without the entry.
    assert verify_package(kit.signed(), kit.trust(), kit.directory(), "strict", NOW).valid


def test_expired_certificate_is_cert_expired(kit: Pki) -> None:
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, not_before=NOW - 800 * DAY, not_after=NOW - DAY)
    data = signed_with(kit, cert)
    assert code_of(data, kit) == "cert_expired"
    # compat records it: the content matches the signature, the certificate is out of date
    result = verify_package(data, kit.trust(), kit.directory(), "compat", NOW)
    assert result.signature_state is SignatureState.UNTRUSTED and result.problem == "cert_expired"


def test_not_yet_valid_certificate_is_cert_not_yet_valid(kit: Pki) -> None:
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, not_before=NOW + DAY, not_after=NOW + 700 * DAY)
    assert code_of(signed_with(kit, cert), kit) == "cert_not_yet_valid"


def test_self_signed_certificate_is_cert_untrusted(kit: Pki) -> None:
    key = ec_key()
    cert = kit.certificate(key, self_signed=True)
    data = signed_with(kit, cert, key)
    assert code_of(data, kit) == "cert_untrusted"
    result = verify_package(data, kit.trust(), kit.directory(), "compat", NOW)
    assert result.signature_state is SignatureState.UNTRUSTED and result.problem == "cert_untrusted"


# Found by the coverage-guided fuzzer: signer certificates that load but whose subject raises
# when read (names are parsed lazily), from the chain's verifier or from cryptography's Name.
MALFORMED = {
    "not UTF-8": "subject-not-utf8.der",
    "a BIT STRING where only x500UniqueIdentifier may have one": "subject-bitstring.der",
}


@pytest.mark.parametrize("name", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_certificate_whose_subject_does_not_parse_is_cert_untrusted(
    kit: Pki, data_dir: Path, name: str
) -> None:
    cert = x509.load_der_x509_certificate((data_dir / "certificates" / name).read_bytes())
    with pytest.raises(PackageRejected) as caught:
        kit.trust().check_signer(cert, NOW)
    assert caught.value.code == "cert_untrusted"


@pytest.mark.parametrize("name", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_certificate_beside_the_signers_in_keyinfo_is_cert_untrusted(
    kit: Pki, data_dir: Path, name: str
) -> None:
    """With several certificates in KeyInfo the signer is the one that issued none of the
    others, found by comparing their names: a name that cannot be read is refused."""
    root = tree(kit.signed())
    (x509_data,) = root.iter(f"{{{names.DS_NS}}}X509Data")
    extra = etree.SubElement(x509_data, f"{{{names.DS_NS}}}X509Certificate")
    extra.text = base64.b64encode((data_dir / "certificates" / name).read_bytes()).decode()
    assert code_of(serialize(root), kit) == "cert_untrusted"


def test_a_certificate_of_no_known_x509_version_is_not_a_certificate(kit: Pki) -> None:
    """Found by the coverage-guided fuzzer: cryptography refuses such a certificate with
    InvalidVersion, which is not a ValueError."""
    root = tree(kit.signed())
    (element,) = root.iter(f"{{{names.DS_NS}}}X509Certificate")
    der = base64.b64decode(element.text or "")
    element.text = base64.b64encode(of_unknown_version(der)).decode()
    assert code_of(serialize(root), kit) == "signature_invalid"


def test_certificate_of_an_unknown_ca_is_cert_untrusted(kit: Pki) -> None:
    rogue_key = pki.new_key(ca=True)
    rogue = pki.make_root(rogue_key, NOW - 30 * DAY, name="Rogue Root CA")
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, issuer=(rogue_key, rogue))
    with pytest.raises(PackageRejected) as caught:
        verify_package(signed_with(kit, cert), kit.trust(), kit.directory(), "strict", NOW)
    assert caught.value.code == "cert_untrusted"
    assert "Rogue Root CA" in caught.value.message
    assert "not in the trust store" in caught.value.message


def test_same_named_ca_with_another_key_is_cert_untrusted(kit: Pki) -> None:
    """The stranger's intermediate has our intermediate's name: the chain still fails."""
    stranger = Pki()
    assert stranger.issuer.subject == kit.issuer.subject
    with pytest.raises(PackageRejected) as caught:
        verify_package(stranger.signed(), kit.trust(), kit.directory(), "strict", NOW)
    assert caught.value.code == "cert_untrusted"


@pytest.mark.parametrize(
    "usage",
    [
        pki.Usage(digital_signature=False, content_commitment=False),
        pki.Usage(extended=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        pki.Usage(ca=True),
    ],
    ids=["no-digital-signature", "server-auth-only", "ca-certificate"],
)
def test_wrong_key_usage_is_cert_usage_invalid(kit: Pki, usage: pki.Usage) -> None:
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, usage=usage)
    assert code_of(signed_with(kit, cert), kit) == "cert_usage_invalid"


def test_document_signing_extended_usages_are_accepted(kit: Pki) -> None:
    key = kit.unit(SENDER)[0]
    usage = pki.Usage(
        extended=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)
    )
    data = signed_with(kit, kit.certificate(key, usage=usage))
    assert verify_package(data, kit.trust(), kit.directory(), "strict", NOW).valid


def test_certificate_signed_with_sha1_is_cert_untrusted() -> None:
    kit = Pki("rsa")
    key, cert = kit.unit(SENDER)
    assert isinstance(kit.issuer_key, rsa.RSAPrivateKey)
    weak = sha1_certificate(cert, kit.issuer_key)
    assert weak.signature_hash_algorithm is not None
    assert weak.signature_hash_algorithm.name == "sha1"
    with pytest.raises(PackageRejected) as caught:
        verify_package(signed_with(kit, weak, key), kit.trust(), kit.directory(), "strict", NOW)
    assert caught.value.code == "cert_untrusted" and "SHA1" in caught.value.message


def test_rsa_1024_key_is_signature_weak_algorithm(kit: Pki) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = kit.certificate(key)
    data = signed_with(kit, cert, key)
    assert code_of(data, kit) == "signature_weak_algorithm"
    result = verify_package(data, kit.trust(), kit.directory(), "compat", NOW)
    assert result.signature_state is SignatureState.WEAK_ALGORITHM


def test_certificate_in_keyinfo_that_did_not_sign_is_signature_invalid(kit: Pki) -> None:
    """SENDER's valid certificate in KeyInfo, but OTHER's key made the signature."""
    data = sign_as(document_from(SENDER), kit.unit(OTHER)[0], kit.unit(SENDER)[1])
    assert code_of(data, kit) == "signature_invalid"


def test_expired_intermediate_is_cert_expired(kit: Pki) -> None:
    old_key = pki.new_key(ca=True)
    old = pki.issue_certificate(
        old_key.public_key(),
        pki.subject_name("Retired Signing CA"),
        kit.root_key,
        kit.root,
        not_before=NOW - 900 * DAY,
        not_after=NOW - DAY,
        usage=pki.CA_USAGE,
    )
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, issuer=(old_key, old), not_before=NOW - 800 * DAY)
    trust = TrustStore([kit.root, kit.issuer, old])
    assert code_of(signed_with(kit, cert), kit, trust) == "cert_expired"


def test_intermediate_from_keyinfo_completes_the_chain(kit: Pki) -> None:
    """A second intermediate, not in the bundle, sent by the signer with its certificate."""
    other_key = pki.new_key(ca=True)
    other_ca = pki.make_intermediate(
        other_key, kit.root_key, kit.root, NOW - 30 * DAY, name="Other CA"
    )
    key = kit.unit(SENDER)[0]
    cert = kit.certificate(key, issuer=(other_key, other_ca))
    data = sign_package(build_package(document_from(SENDER)), key, cert, chain=[other_ca])
    no_crl = kit.trust(crl=False)
    assert verify_package(data, no_crl, kit.directory(), "strict", NOW).valid
    # With CRLs loaded, a certificate whose issuer has none is refused: revocation unknown.
    with pytest.raises(PackageRejected) as caught:
        verify_package(data, kit.trust(), kit.directory(), "strict", NOW)
    assert caught.value.code == "cert_untrusted" and "no CRL" in caught.value.message


def test_out_of_date_crl_is_cert_untrusted(kit: Pki) -> None:
    stale = TrustStore([kit.root, kit.issuer], [kit.crl(days=1, at=NOW - 10 * DAY)])
    with pytest.raises(PackageRejected) as caught:
        verify_package(kit.signed(), stale, kit.directory(), "strict", NOW)
    assert caught.value.code == "cert_untrusted" and "out of date" in caught.value.message


def test_trust_store_without_crl_does_not_check_revocation(kit: Pki) -> None:
    no_crl = kit.trust(crl=False)
    assert not no_crl.checks_revocation
    assert verify_package(kit.signed(), no_crl, kit.directory(), "strict", NOW).valid


def test_crl_not_signed_by_a_trusted_ca_is_refused(kit: Pki) -> None:
    stranger = Pki()
    with pytest.raises(ConfigError) as caught:
        TrustStore([kit.root, kit.issuer], [stranger.crl()])
    assert caught.value.code == "config_invalid"


def test_trust_bundle_needs_a_root(kit: Pki) -> None:
    with pytest.raises(ConfigError):
        TrustStore([kit.issuer])
    with pytest.raises(ConfigError):
        TrustStore.from_pem(b"not a pem bundle")


def test_leaf_certificate_in_the_bundle_is_not_a_root(kit: Pki) -> None:
    """Only self-signed certificates of the bundle are anchors."""
    _, cert = kit.unit(SENDER)
    trust = TrustStore([kit.root, kit.issuer, cert])
    assert cert not in trust.roots
    assert verify_package(kit.signed(), trust, kit.directory(), "strict", NOW).valid


def test_chain_cache_is_bounded() -> None:
    assert 809 * 2 < CHAIN_CACHE_SIZE <= 100_000
