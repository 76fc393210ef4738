"""A development PKI in memory for trust tests: CAs, unit certificates issued on demand,
bad certificates of every kind, and packages signed by any unit."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from samples import sample_document

from gateway.directory import Directory, parse_directory
from gateway.envelope import Organization, Package, build_package, make_document_id
from gateway.trust import TrustStore, pki, sign_package

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
SIGNING = pki.Usage()  # a unit signing certificate's usage
SENDER = "000.00.05.H07"  # the sender of samples.sample_document()
OTHER = "000.00.06.H07"
SUSPENDED = "000.02.05.H07"
PINNED = "000.01.05.H07"
UNLISTED = "000.00.77.H07"  # has a certificate, is not in the directory

DIRECTORY_CSV = """\
code,name,parent_code,level,delivery,endpoint,status,cert_sha256
000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active,
000.00.05.H07,Sở Nội vụ,000.00.00.H07,2,pull,,active,
000.00.06.H07,Sở Tài chính,000.00.00.H07,2,push,https://stc.example/inbox,active,
000.01.05.H07,Ban Tôn giáo,000.00.05.H07,3,pull,,active,{pin}
000.02.05.H07,Ban Thi đua - Khen thưởng,000.00.05.H07,3,pull,,suspended,
000.01.20.H07,Phòng Nội vụ huyện,000.00.00.H07,2,amqp,,active,
"""


def document_from(code: str, **changes: object) -> Package:
    """The sample document, sent by ``code``."""
    day = dt.date(2026, 11, 26)
    base = sample_document(
        sender=Organization(code, f"Đơn vị {code}"),
        document_id=make_document_id(code, day, "125", "SNV-VP"),
        traces=(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Pki:
    """Root and intermediate CAs with unit certificates issued on first use."""

    algorithm: pki.Algorithm = "ec"
    root_key: pki.IssuerKey = field(init=False)
    root: x509.Certificate = field(init=False)
    issuer_key: pki.IssuerKey = field(init=False)
    issuer: x509.Certificate = field(init=False)
    units: dict[str, tuple[pki.SigningKey, x509.Certificate]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        start = NOW - dt.timedelta(days=30)
        self.root_key = pki.new_key(self.algorithm, ca=True)
        self.root = pki.make_root(self.root_key, start)
        self.issuer_key = pki.new_key(self.algorithm, ca=True)
        self.issuer = pki.make_intermediate(self.issuer_key, self.root_key, self.root, start)

    def bundle(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.root, self.issuer)
        )

    def trust(self, revoked: tuple[x509.Certificate, ...] = (), crl: bool = True) -> TrustStore:
        crls = [self.crl(revoked)] if crl else []
        return TrustStore([self.root, self.issuer], crls)

    def crl(
        self, revoked: tuple[x509.Certificate, ...] = (), *, days: int = 365, at: dt.datetime = NOW
    ) -> x509.CertificateRevocationList:
        entries = [pki.Revocation(c.serial_number, at - dt.timedelta(days=1)) for c in revoked]
        return pki.make_crl(
            self.issuer_key, self.issuer, entries, at - dt.timedelta(days=1), days=days
        )

    def unit(self, code: str) -> tuple[pki.SigningKey, x509.Certificate]:
        if code not in self.units:
            key = pki.new_key(self.algorithm)
            cert = pki.issue_unit_certificate(
                key.public_key(),
                code,
                f"Đơn vị {code}",
                self.issuer_key,
                self.issuer,
                NOW - dt.timedelta(days=30),
            )
            self.units[code] = (key, cert)
        return self.units[code]

    def directory(self) -> Directory:
        _, pinned = self.unit(PINNED)
        return parse_directory(DIRECTORY_CSV.format(pin=pki.fingerprint(pinned)))

    def certificate(
        self,
        key: pki.SigningKey,
        *,
        organ_id: str = SENDER,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        usage: pki.Usage = SIGNING,
        issuer: tuple[pki.IssuerKey, x509.Certificate] | None = None,
        self_signed: bool = False,
    ) -> x509.Certificate:
        """A signer certificate with any of its properties changed."""
        issuer_key, issuer_cert = issuer or (self.issuer_key, self.issuer)
        return pki.issue_certificate(
            key.public_key(),
            pki.subject_name(f"Đơn vị {organ_id}", organ_id=organ_id),
            key if self_signed else issuer_key,  # type: ignore[arg-type]
            None if self_signed else issuer_cert,
            not_before=not_before or NOW - dt.timedelta(days=30),
            not_after=not_after or NOW + dt.timedelta(days=700),
            usage=usage,
        )

    def signed(self, code: str = SENDER, package: Package | None = None) -> bytes:
        key, cert = self.unit(code)
        return sign_package(build_package(package or document_from(code)), key, cert)


def sign_as(package: Package, key: pki.SigningKey, cert: x509.Certificate) -> bytes:
    return sign_package(build_package(package), key, cert)


# --- SHA-1 certificates: cryptography refuses to issue them, so one is re-signed by hand ---


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _children(der: bytes) -> list[bytes]:
    """The encoded children of a DER SEQUENCE."""
    assert der[0] == 0x30
    pos = 1
    first = der[pos]
    pos += 1 + (first & 0x7F if first & 0x80 else 0)
    out = []
    while pos < len(der):
        start = pos
        pos += 1
        first = der[pos]
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(der[pos + 1 : pos + 1 + count], "big")
            pos += 1 + count
        else:
            length = first
            pos += 1
        pos += length
        out.append(der[start:pos])
    return out


SHA1_WITH_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def of_unknown_version(der: bytes) -> bytes:
    """The certificate ``der`` (an X.509 v3 one) claiming version 10, which no one knows."""
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
    assert v3 in der
    return der.replace(v3, v3[:-1] + b"\x0a", 1)


def sha1_certificate(cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """``cert`` re-signed by ``issuer_key`` (RSA) with sha1WithRSAEncryption."""
    outer = _children(cert.public_bytes(serialization.Encoding.DER))
    tbs = _children(outer[0])
    tbs[2] = SHA1_WITH_RSA  # version, serial, then the signature AlgorithmIdentifier
    tbs_der = _tlv(0x30, b"".join(tbs))
    signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())
    der = _tlv(0x30, tbs_der + SHA1_WITH_RSA + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
