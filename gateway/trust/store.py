"""The trust store: the CA certificates we trust, their CRLs, and the signer-certificate check
(key strength, usage, validity, chain, revocation) with the chain cached per certificate.

Only the CAs of the bundle are trusted (our own, and those of the other provinces and the
national axis we are configured to trust): the roots are its self-signed certificates, the
others are intermediates; each CA's CRL must be loaded (one PEM file may hold them all).
Pure: certificates and a clock in.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import verification

from gateway.errors import CodeName, ConfigError, PackageRejected
from gateway.trust.pki import DOCUMENT_SIGNING_EKUS, fingerprint, organ_ids

MIN_RSA_BITS = 2048
STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
WEAK_CERT_HASHES = frozenset({"sha1", "md5"})
CHAIN_CACHE_SIZE = 8192  # chains remembered; the sample province has 809 units


@dataclass(frozen=True, slots=True)
class Signer:
    """A signer certificate that passed every check at a given time."""

    certificate: x509.Certificate
    sha256: str
    organ_ids: tuple[str, ...]  # OrganIds named in the subject (serialNumber or OU)
    chain: tuple[x509.Certificate, ...]  # leaf first, root last


@dataclass(frozen=True, slots=True)
class _Facts:
    """What can be known of a certificate without a clock or a trust store."""

    sha256: str
    organ_ids: tuple[str, ...]
    problem: tuple[CodeName, str] | None  # (code, message) of a key or usage problem
    not_before: dt.datetime
    not_after: dt.datetime


def _malformed(e: Exception) -> PackageRejected:
    return PackageRejected("cert_untrusted", f"the signer certificate is malformed: {e}")


@functools.lru_cache(maxsize=8192)
def _facts(cert: x509.Certificate) -> _Facts:
    try:
        problem = None
        try:
            _check_key(cert)
            _check_usage(cert)
        except PackageRejected as e:
            problem = (e.code, e.message)
        return _Facts(
            fingerprint(cert),
            organ_ids(cert),
            problem,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
    except (ValueError, TypeError, x509.DuplicateExtension) as e:
        # a name or an extension, which the parser reads only when asked, is malformed
        never = dt.datetime.min.replace(tzinfo=dt.UTC)
        malformed = _malformed(e)
        return _Facts(fingerprint(cert), (), (malformed.code, malformed.message), never, never)


@dataclass(frozen=True, slots=True)
class _Chain:
    chain: tuple[x509.Certificate, ...]
    issuer_sha256: str | None  # the CA that issued the signer certificate
    not_before: dt.datetime  # the chain is valid only where every certificate is
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class _Crl:
    crl: x509.CertificateRevocationList
    issuer_sha256: str  # the CA whose key signed it
    revoked: frozenset[int]
    next_update: dt.datetime | None


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _require_key_usage(
    policy: verification.Policy, cert: x509.Certificate, key_usage: x509.KeyUsage | None
) -> None:
    # The usage itself is checked first by ``_check_usage`` for a precise error code.
    if key_usage is None:
        raise ValueError("the certificate has no KeyUsage")


class TrustStore:
    """CA certificates and CRLs that signer certificates are checked against.

    A store without CRLs does not check revocation; with CRLs, every signer's issuer must have
    a current one (fail closed). Instances are immutable: reload to pick up a new CRL."""

    def __init__(
        self, cas: Iterable[x509.Certificate], crls: Iterable[x509.CertificateRevocationList] = ()
    ) -> None:
        cas = list(cas)
        self.roots = tuple(c for c in cas if _is_self_signed(c))
        self.intermediates = tuple(c for c in cas if not _is_self_signed(c))
        if not self.roots:
            raise ConfigError("the trust bundle holds no self-signed root CA certificate")
        self._store = verification.Store(list(self.roots))
        self._ee_policy = verification.ExtensionPolicy.permit_all().require_present(
            x509.KeyUsage, verification.Criticality.AGNOSTIC, _require_key_usage
        )
        self._ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()
        self._crls = tuple(self._check_crl(c, cas) for c in crls)
        self._chains: OrderedDict[tuple[str, ...], _Chain] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_pem(cls, bundle: bytes, crls: Iterable[bytes] = ()) -> TrustStore:
        """A store from a PEM CA bundle and CRLs (PEM or DER)."""
        try:
            cas = x509.load_pem_x509_certificates(bundle)
        except ValueError as e:
            raise ConfigError(f"the trust bundle is not a PEM certificate bundle: {e}") from e
        loaded = []
        for data in crls:
            try:
                if b"-----BEGIN" in data:
                    # one file may hold the CRLs of several CAs (every root we trust)
                    loaded += [x509.load_pem_x509_crl(block) for block in _pem_blocks(data)]
                else:
                    loaded.append(x509.load_der_x509_crl(data))
            except ValueError as e:
                raise ConfigError(f"the CRL is neither PEM nor DER: {e}") from e
        return cls(cas, loaded)

    @classmethod
    def from_files(cls, trust_pem: Path, crl: Path | None = None) -> TrustStore:
        """Read a PEM CA bundle and, optionally, one CRL file (DER, or PEM holding one CRL
        per CA)."""
        try:
            bundle = Path(trust_pem).read_bytes()
            crls = [Path(crl).read_bytes()] if crl is not None else []
        except OSError as e:
            raise ConfigError(f"cannot read {e.filename}: {e.strerror}") from e
        return cls.from_pem(bundle, crls)

    def __repr__(self) -> str:
        return (
            f"<TrustStore roots={len(self.roots)} intermediates={len(self.intermediates)} "
            f"crls={len(self._crls)}>"
        )

    @property
    def checks_revocation(self) -> bool:
        return bool(self._crls)

    def to_pem(self) -> tuple[bytes, tuple[bytes, ...]]:
        """The CA bundle (roots and intermediates) and each CRL, as PEM: the trust in force,
        for evidence that must be checked later without the gateway."""
        cas = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (*self.roots, *self.intermediates)
        )
        return cas, tuple(c.crl.public_bytes(serialization.Encoding.PEM) for c in self._crls)

    @staticmethod
    def _check_crl(crl: x509.CertificateRevocationList, cas: Sequence[x509.Certificate]) -> _Crl:
        for ca in cas:
            if ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                return _Crl(
                    crl,
                    fingerprint(ca),
                    frozenset(entry.serial_number for entry in crl),
                    crl.next_update_utc,
                )
        raise ConfigError(
            f"the CRL of {crl.issuer.rfc4514_string()} is not signed by a CA of the trust bundle"
        )

    def check_signer(
        self,
        cert: x509.Certificate,
        now: dt.datetime,
        intermediates: Sequence[x509.Certificate] = (),
    ) -> Signer:
        """Check a signer certificate at ``now``; raise PackageRejected with the precise code.

        Codes: signature_weak_algorithm (a key too weak to sign), cert_untrusted, cert_expired,
        cert_not_yet_valid, cert_revoked, cert_usage_invalid."""
        facts = _facts(cert)
        if facts.problem is not None:
            raise PackageRejected(*facts.problem)
        if now < facts.not_before:
            raise PackageRejected(
                "cert_not_yet_valid",
                f"the signer certificate is valid from {facts.not_before:%Y-%m-%d %H:%M}Z",
            )
        if now > facts.not_after:
            raise PackageRejected(
                "cert_expired",
                f"the signer certificate expired on {facts.not_after:%Y-%m-%d %H:%M}Z",
            )
        chain = self._chain(cert, facts.sha256, intermediates, now)
        self._check_revocation(cert, chain, now)
        return Signer(cert, facts.sha256, facts.organ_ids, chain.chain)

    def _chain(
        self,
        cert: x509.Certificate,
        sha256: str,
        intermediates: Sequence[x509.Certificate],
        now: dt.datetime,
    ) -> _Chain:
        key = (sha256, *(_facts(c).sha256 for c in intermediates)) if intermediates else (sha256,)
        cached = self._chains.get(key)  # a single dict read needs no lock
        if cached is not None and cached.not_before <= now <= cached.not_after:
            return cached
        built = self._build_chain(cert, intermediates, now)
        with self._lock:
            self._chains[key] = built
            while len(self._chains) > CHAIN_CACHE_SIZE:  # oldest first
                self._chains.popitem(last=False)
        return built

    def _build_chain(
        self, cert: x509.Certificate, intermediates: Sequence[x509.Certificate], now: dt.datetime
    ) -> _Chain:
        weak = _weak_hash(cert)
        if weak:
            raise PackageRejected(
                "cert_untrusted", f"the signer certificate is signed with {weak.upper()}"
            )
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ee_policy=self._ee_policy, ca_policy=self._ca_policy)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(cert, [*intermediates, *self.intermediates])
        except verification.VerificationError as e:
            raise self._chain_error(cert, str(e), now) from e
        except ValueError as e:  # a name it had to read does not parse
            raise _malformed(e) from e
        chain = tuple(verified.chain)
        return _Chain(
            chain,
            fingerprint(chain[1]) if len(chain) > 1 else None,
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
        )

    def _chain_error(
        self, cert: x509.Certificate, reason: str, now: dt.datetime
    ) -> PackageRejected:
        try:
            cert.subject, cert.issuer  # noqa: B018 (read lazily: a malformed name raises here)
        except (ValueError, TypeError) as e:  # TypeError: a value of a type not allowed there
            return _malformed(e)
        if cert.subject == cert.issuer:
            return PackageRejected(
                "cert_untrusted", "the signer certificate is self-signed, not issued by our CA"
            )
        issuers = [c for c in (*self.intermediates, *self.roots) if c.subject == cert.issuer]
        if not issuers:
            return PackageRejected(
                "cert_untrusted",
                f"the signer certificate was issued by {cert.issuer.rfc4514_string()}, "
                "which is not in the trust store",
            )
        if all(not c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in issuers):
            ca = issuers[0]
            code: CodeName = (
                "cert_expired" if now > ca.not_valid_after_utc else "cert_not_yet_valid"
            )
            return PackageRejected(
                code,
                f"the issuing CA certificate ({ca.subject.rfc4514_string()}) is valid from "
                f"{ca.not_valid_before_utc:%Y-%m-%d} to {ca.not_valid_after_utc:%Y-%m-%d}",
            )
        return PackageRejected(
            "cert_untrusted", f"the signer certificate does not chain to the trust store: {reason}"
        )

    def _check_revocation(self, cert: x509.Certificate, chain: _Chain, now: dt.datetime) -> None:
        if not self._crls:
            return
        crls = [c for c in self._crls if c.issuer_sha256 == chain.issuer_sha256]
        if not crls:
            raise PackageRejected(
                "cert_untrusted",
                f"no CRL of {cert.issuer.rfc4514_string()} is loaded, so revocation is unknown",
            )
        if all(c.next_update is not None and c.next_update < now for c in crls):
            raise PackageRejected(
                "cert_untrusted",
                f"the CRL of {cert.issuer.rfc4514_string()} is out of date "
                f"(next update {crls[0].next_update:%Y-%m-%d}), so revocation is unknown",
            )
        for c in crls:
            if cert.serial_number in c.revoked:
                entry = c.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                when = f" on {entry.revocation_date_utc:%Y-%m-%d %H:%M}Z" if entry else ""
                raise PackageRejected(
                    "cert_revoked",
                    f"the signer certificate (serial {cert.serial_number:x}) was revoked{when}",
                )


def _pem_blocks(data: bytes) -> list[bytes]:
    """Each ``-----BEGIN …-----`` … ``-----END …-----`` block of a PEM file."""
    blocks = re.findall(rb"-----BEGIN [^-]+-----.+?-----END [^-]+-----", data, re.DOTALL)
    return blocks or [data]


def _weak_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:  # an algorithm cryptography does not know is not one we trust
        return "an unsupported algorithm"
    if algorithm is not None and algorithm.name in WEAK_CERT_HASHES:
        return algorithm.name
    return None


def _check_key(cert: x509.Certificate) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise PackageRejected(
                "signature_weak_algorithm",
                f"the signer key is RSA-{key.key_size}; at least RSA-{MIN_RSA_BITS} is required",
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            raise PackageRejected(
                "signature_weak_algorithm", f"the signer key uses the curve {key.curve.name}"
            )
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise PackageRejected(
            "signature_weak_algorithm", f"the signer key type {type(key).__name__} is not accepted"
        )


def _check_usage(cert: x509.Certificate) -> None:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if basic.ca:
            raise PackageRejected("cert_usage_invalid", "a CA certificate may not sign packages")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as e:
        raise PackageRejected(
            "cert_usage_invalid", "the signer certificate has no KeyUsage extension"
        ) from e
    if not (usage.digital_signature or usage.content_commitment):
        raise PackageRejected(
            "cert_usage_invalid",
            "the signer certificate's KeyUsage allows neither digitalSignature nor nonRepudiation",
        )
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not DOCUMENT_SIGNING_EKUS.intersection(extended):
        names = ", ".join(oid.dotted_string for oid in extended)
        raise PackageRejected(
            "cert_usage_invalid",
            f"the signer certificate's ExtendedKeyUsage ({names}) excludes signing",
        )
