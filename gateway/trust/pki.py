"""Certificates and CRLs of the development PKI: a root CA, an intermediate CA that issues
unit signing certificates, the gateway certificate and the CRL. Pure: keys and a clock in,
``cryptography`` objects out; ``gateway.trust.keyfiles`` writes them to disk.

A unit's OrganId is bound into its certificate as the subject ``serialNumber`` (docs/trust.md).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Algorithm = Literal["ec", "rsa"]
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_DAYS = 10 * 365
INTERMEDIATE_DAYS = 5 * 365
LEAF_DAYS = 2 * 365  # unit and gateway certificates
CRL_DAYS = 365
BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks that run a little behind

COUNTRY = "VN"
_ORGAN_ID = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
# Extended key usages that allow signing documents (when a certificate lists any at all).
DOCUMENT_SIGNING_EKUS = frozenset(
    {
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # id-kp-documentSigning (RFC 9336)
    }
)


def new_key(algorithm: Algorithm = "ec", *, ca: bool = False) -> SigningKey:
    """A fresh key: EC P-256 (P-384 for a CA) or RSA-2048 (RSA-3072 for a CA)."""
    if algorithm == "ec":
        return ec.generate_private_key(ec.SECP384R1() if ca else ec.SECP256R1())
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072 if ca else 2048)
    raise ValueError(f"unknown key algorithm {algorithm!r}; expected ec or rsa")


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate's DER encoding, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def organ_ids(cert: x509.Certificate) -> tuple[str, ...]:
    """The OrganIds in a certificate subject: serialNumber or OU values in the national format;
    none when the subject cannot be read (a malformed certificate names no one)."""
    found: list[str] = []
    try:  # the subject and its values are parsed when first read
        for oid in (NameOID.SERIAL_NUMBER, NameOID.ORGANIZATIONAL_UNIT_NAME):
            for attr in cert.subject.get_attributes_for_oid(oid):
                value = attr.value
                text = value if isinstance(value, str) else value.decode("utf-8", "replace")
                if _ORGAN_ID.fullmatch(text) and text not in found:
                    found.append(text)
    except (ValueError, TypeError):  # TypeError: a value of a type its attribute may not have
        return ()
    return tuple(found)


def _short(text: str, limit: int = 64) -> str:
    """X.520 caps CN and O at 64 (cryptography counts UTF-8 bytes); cut long names at a word."""
    if len(text.encode()) <= limit:
        return text
    words = text.split(" ")
    while len(words) > 1 and len((" ".join(words) + "…").encode()) > limit:
        words.pop()
    cut = " ".join(words) + "…"
    while len(cut.encode()) > limit:
        cut = cut[:-2] + "…"
    return cut


def subject_name(
    common_name: str, *, organization: str | None = None, organ_id: str | None = None
) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, _short(organization)))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, _short(common_name)))
    if organ_id:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, organ_id))
    return x509.Name(attrs)


def _key_id(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey,
) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest


@dataclass(frozen=True)
class Usage:
    """What a certificate may do; the defaults are those of a unit signing certificate."""

    ca: bool = False
    path_length: int | None = None
    digital_signature: bool = True
    content_commitment: bool = True
    key_cert_sign: bool = False
    crl_sign: bool = False
    extended: tuple[x509.ObjectIdentifier, ...] = ()


CA_USAGE = Usage(
    ca=True, digital_signature=False, content_commitment=False, key_cert_sign=True, crl_sign=True
)


def issue_certificate(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey,
    subject: x509.Name,
    issuer_key: IssuerKey,
    issuer: x509.Certificate | None,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    usage: Usage = Usage(),
    serial: int | None = None,
    hash_algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
) -> x509.Certificate:
    """Issue a certificate; ``issuer=None`` makes it self-signed (a root)."""
    issuer_name = subject if issuer is None else issuer.subject
    issuer_public = issuer_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=usage.ca, path_length=usage.path_length), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=usage.digital_signature,
                content_commitment=usage.content_commitment,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=usage.key_cert_sign,
                crl_sign=usage.crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier(_key_id(public_key)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(_key_id(issuer_public), None, None), critical=False
        )
    )
    if usage.extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage.extended)), critical=False)
    return builder.sign(issuer_key, hash_algorithm or hashes.SHA256())


def make_root(
    key: IssuerKey, now: dt.datetime, *, name: str = "Gateway Development Root CA"
) -> x509.Certificate:
    return issue_certificate(
        key.public_key(),
        subject_name(name, organization="Gateway development PKI"),
        key,
        None,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=ROOT_DAYS),
        usage=CA_USAGE,
    )


def make_intermediate(
    key: IssuerKey,
    root_key: IssuerKey,
    root: x509.Certificate,
    now: dt.datetime,
    *,
    name: str = "Gateway Development Signing CA",
) -> x509.Certificate:
    return issue_certificate(
        key.public_key(),
        subject_name(name, organization="Gateway development PKI"),
        root_key,
        root,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=INTERMEDIATE_DAYS),
        usage=replace(CA_USAGE, path_length=0),
    )


def issue_unit_certificate(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    organ_id: str,
    unit_name: str,
    issuer_key: IssuerKey,
    issuer: x509.Certificate,
    now: dt.datetime,
    *,
    organization: str | None = None,
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    """A unit's signing certificate: its OrganId as subject serialNumber, digitalSignature."""
    return issue_certificate(
        public_key,
        subject_name(unit_name, organization=organization, organ_id=organ_id),
        issuer_key,
        issuer,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=days),
    )


def issue_gateway_certificate(
    public_key: ed25519.Ed25519PublicKey,
    issuer_key: IssuerKey,
    issuer: x509.Certificate,
    now: dt.datetime,
    *,
    name: str = "Gateway receipts and ledger checkpoints",
) -> x509.Certificate:
    """The gateway's own certificate (Ed25519): it signs receipts and checkpoints, not packages."""
    return issue_certificate(
        public_key,
        subject_name(name, organization="Gateway development PKI"),
        issuer_key,
        issuer,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=LEAF_DAYS),
        usage=Usage(content_commitment=True),
    )


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags | None = None


def make_crl(
    issuer_key: IssuerKey,
    issuer: x509.Certificate,
    revocations: Iterable[Revocation],
    now: dt.datetime,
    *,
    days: int = CRL_DAYS,
    number: int = 1,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - BACKDATE)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(_key_id(issuer_key.public_key()), None, None),
            critical=False,
        )
    )
    for r in revocations:
        entry = (
            x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at)
        )
        if r.reason is not None:
            entry = entry.add_extension(x509.CRLReason(r.reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer_key, hashes.SHA256())


def revocations_of(crl: x509.CertificateRevocationList) -> list[Revocation]:
    """The entries of an existing CRL, to carry them into the next one."""
    found = []
    for entry in crl:
        try:
            reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reason = None
        found.append(Revocation(entry.serial_number, entry.revocation_date_utc, reason))
    return found


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0
