"""The development PKI on disk: gateway.trust.keyfiles (init, revoke, rotate, CRL) and the
certificates it issues."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from trustkit import DIRECTORY_CSV, OTHER, SENDER, document_from

from gateway.directory import Directory, parse_directory
from gateway.envelope import build_package
from gateway.errors import ConfigError, PackageRejected
from gateway.trust import (
    KeysLayout,
    fingerprint,
    init_keys,
    issue_unit,
    load_gateway_signer,
    load_trust,
    load_unit_signer,
    organ_ids,
    reissue_crl,
    revoke_unit,
    rotate_unit,
    sign_package,
    verify_package,
)
from gateway.trust.pki import subject_name

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return parse_directory(DIRECTORY_CSV.format(pin=""))


@pytest.fixture
def keys(tmp_path: Path, directory: Directory) -> Path:
    init_keys(tmp_path / "keys", directory, now=NOW)
    return tmp_path / "keys"


def signed_by(keys: Path, code: str) -> bytes:
    return sign_package(build_package(document_from(code)), *load_unit_signer(keys, code))


def test_init_writes_the_documented_layout(keys: Path, directory: Directory) -> None:
    layout = KeysLayout(keys)
    for path in (
        layout.trust_pem,
        layout.crl_pem,
        layout.fingerprints,
        layout.root_cert,
        layout.root_key,
        layout.intermediate_cert,
        layout.intermediate_key,
        layout.gateway_key,
        layout.gateway_cert,
        layout.gateway_chain,
    ):
        assert path.is_file(), path
    assert sorted(p.name for p in layout.units.iterdir()) == sorted(u.code for u in directory)
    assert keys / "trust.pem" == layout.trust_pem and keys / "crl.pem" == layout.crl_pem
    assert layout.unit_cert(SENDER) == keys / "units" / SENDER / "cert.pem"
    bundle = x509.load_pem_x509_certificates(layout.trust_pem.read_bytes())
    assert [c.subject for c in bundle] == [
        x509.load_pem_x509_certificate(layout.root_cert.read_bytes()).subject,
        x509.load_pem_x509_certificate(layout.intermediate_cert.read_bytes()).subject,
    ]


def test_private_keys_are_pkcs8_files_of_mode_0600(keys: Path) -> None:
    layout = KeysLayout(keys)
    for path in (
        layout.root_key,
        layout.intermediate_key,
        layout.gateway_key,
        layout.unit_key(SENDER),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(layout.units.stat().st_mode) == 0o700


def test_unit_certificate_binds_the_organ_id_and_may_sign(keys: Path) -> None:
    key, cert = load_unit_signer(keys, SENDER)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert organ_ids(cert) == (SENDER,)
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == SENDER
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=729) < lifetime < dt.timedelta(days=731)
    issuer = x509.load_pem_x509_certificate(KeysLayout(keys).intermediate_cert.read_bytes())
    cert.verify_directly_issued_by(issuer)


def test_fingerprints_file_lists_every_units_certificate(keys: Path, directory: Directory) -> None:
    lines = KeysLayout(keys).fingerprints.read_text().splitlines()
    assert lines[0] == "code,cert_sha256"
    rows = dict(line.split(",") for line in lines[1:])
    assert set(rows) == {u.code for u in directory}
    assert rows[SENDER] == fingerprint(load_unit_signer(keys, SENDER)[1])


def test_gateway_key_is_ed25519_with_its_chain(keys: Path) -> None:
    gateway = load_gateway_signer(keys)
    assert isinstance(gateway.key, ed25519.Ed25519PrivateKey)
    assert gateway.chain[0] == gateway.cert and len(gateway.chain) == 3
    gateway.cert.verify_directly_issued_by(gateway.chain[1])
    gateway.chain[1].verify_directly_issued_by(gateway.chain[2])
    assert organ_ids(gateway.cert) == ()  # it cannot speak for any unit
    usage = gateway.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature


def test_init_refuses_to_overwrite_without_force(keys: Path, directory: Directory) -> None:
    before = KeysLayout(keys).root_cert.read_bytes()
    with pytest.raises(ConfigError) as caught:
        init_keys(keys, directory)
    assert "--force" in caught.value.message
    assert KeysLayout(keys).root_cert.read_bytes() == before


def test_init_with_force_replaces_only_its_own_files(keys: Path, directory: Directory) -> None:
    (keys / "notes.txt").write_text("kept")
    (keys / "units" / "999.99.99.H07").mkdir()
    before = KeysLayout(keys).root_cert.read_bytes()
    init_keys(keys, directory, force=True)
    assert KeysLayout(keys).root_cert.read_bytes() != before
    assert (keys / "notes.txt").read_text() == "kept"
    assert not (keys / "units" / "999.99.99.H07").exists()


def test_rsa_pki(tmp_path: Path, directory: Directory) -> None:
    small = Directory([u for u in directory if u.code in (SENDER, "000.00.00.H07")])
    init_keys(tmp_path, small, algorithm="rsa")
    key, _ = load_unit_signer(tmp_path, SENDER)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert isinstance(load_gateway_signer(tmp_path).key, ed25519.Ed25519PrivateKey)


def test_signed_package_verifies_against_the_folder(keys: Path, directory: Directory) -> None:
    result = verify_package(signed_by(keys, SENDER), load_trust(keys), directory)
    assert result.valid and result.signer == SENDER


def test_revoke_re_issues_the_crl_and_the_certificate_is_refused(
    keys: Path, directory: Directory
) -> None:
    data = signed_by(keys, SENDER)
    cert, new = revoke_unit(keys, SENDER, reason=x509.ReasonFlags.key_compromise)
    assert new and cert == load_unit_signer(keys, SENDER)[1]
    crl = x509.load_pem_x509_crl(KeysLayout(keys).crl_pem.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    with pytest.raises(PackageRejected) as caught:
        verify_package(data, load_trust(keys), directory)
    assert caught.value.code == "cert_revoked"
    # Others are unaffected, and revoking twice changes nothing.
    assert verify_package(signed_by(keys, OTHER), load_trust(keys), directory).valid
    assert revoke_unit(keys, SENDER)[1] is False
    assert len(list(x509.load_pem_x509_crl(KeysLayout(keys).crl_pem.read_bytes()))) == 1


def test_rotate_issues_a_new_certificate_and_the_old_stays_valid(
    keys: Path, directory: Directory
) -> None:
    old_data = signed_by(keys, SENDER)
    old, new = rotate_unit(keys, SENDER)
    assert old.serial_number != new.serial_number and old.subject == new.subject
    assert load_unit_signer(keys, SENDER)[1] == new
    assert (KeysLayout(keys).unit_old(SENDER) / f"{old.serial_number:x}.cert.pem").is_file()
    trust = load_trust(keys)
    assert verify_package(old_data, trust, directory).valid
    assert verify_package(signed_by(keys, SENDER), trust, directory).valid
    rows = dict(
        line.split(",") for line in KeysLayout(keys).fingerprints.read_text().splitlines()[1:]
    )
    assert rows[SENDER] == fingerprint(new)
    # The old certificate can then be revoked by its serial; the new one stays good.
    revoke_unit(keys, SENDER, serial=old.serial_number)
    with pytest.raises(PackageRejected):
        verify_package(old_data, load_trust(keys), directory)
    assert verify_package(signed_by(keys, SENDER), load_trust(keys), directory).valid


def test_revoke_unknown_serial_is_a_config_error(keys: Path) -> None:
    with pytest.raises(ConfigError):
        revoke_unit(keys, SENDER, serial=12345)


def test_reissued_crl_keeps_entries_and_counts_up(keys: Path) -> None:
    cert, _ = revoke_unit(keys, SENDER)
    first = x509.load_pem_x509_crl(KeysLayout(keys).crl_pem.read_bytes())
    later = reissue_crl(keys, now=NOW + dt.timedelta(days=30))
    assert [e.serial_number for e in later] == [cert.serial_number]
    number = x509.CRLNumber
    assert (
        later.extensions.get_extension_for_class(number).value.crl_number
        == first.extensions.get_extension_for_class(number).value.crl_number + 1
    )
    assert later.next_update_utc is not None and first.next_update_utc is not None
    assert later.next_update_utc > first.next_update_utc


def test_loaders_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_unit_signer(tmp_path, SENDER)
    assert "gateway keys init" in caught.value.message
    with pytest.raises(ConfigError):
        load_trust(tmp_path)
    with pytest.raises(ConfigError):
        load_gateway_signer(tmp_path)


def test_long_unit_names_fit_in_the_subject() -> None:
    name = "Ban Quản lý dự án đầu tư xây dựng các công trình dân dụng và công nghiệp tỉnh"
    subject = subject_name(name, organization=name, organ_id=SENDER)
    common_name = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    assert len(common_name.encode()) <= 64 and common_name.endswith("…")
    assert name.startswith(common_name[:-1].rstrip())


def test_issue_gives_a_unit_added_later_a_key_under_the_same_intermediate(
    keys: Path, directory: Directory
) -> None:
    new = "000.00.90.H07"
    grown = parse_directory(
        DIRECTORY_CSV.format(pin="") + f"{new},Sở mới,000.00.00.H07,2,pull,,active,\n"
    )
    cert = issue_unit(keys, grown, new, now=NOW)
    assert organ_ids(cert) == (new,)
    assert (
        cert.issuer
        == x509.load_pem_x509_certificate(KeysLayout(keys).intermediate_cert.read_bytes()).subject
    )
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)  # like its intermediate
    rows = dict(
        line.split(",") for line in KeysLayout(keys).fingerprints.read_text().splitlines()[1:]
    )
    assert rows[new] == fingerprint(cert)
    signed = sign_package(build_package(document_from(new)), *load_unit_signer(keys, new))
    assert verify_package(signed, load_trust(keys), grown).valid
    with pytest.raises(ConfigError, match="has a key already"):
        issue_unit(keys, grown, new)
    with pytest.raises(ConfigError, match="not in the unit directory"):
        issue_unit(keys, directory, "000.00.91.H07")
