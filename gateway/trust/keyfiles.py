"""The key folder of the development PKI (``gateway keys init``) and the small loaders that
read it. The only module of ``gateway.trust`` that touches files.

Layout (``KeysLayout``)::

    trust.pem                 CA bundle: root + intermediate
    crl.pem                   CRL issued by the intermediate (PEM)
    fingerprints.csv          code,cert_sha256 of every unit's current certificate
    root/cert.pem, key.pem
    intermediate/cert.pem, key.pem
    gateway/key.pem           Ed25519 (PKCS8), signs receipts and ledger checkpoints
    gateway/cert.pem          issued by the intermediate
    gateway/chain.pem         gateway cert + intermediate + root
    units/<OrganId>/cert.pem, key.pem
    units/<OrganId>/old/<serial>.cert.pem, .key.pem   certificates replaced by ``rotate``

Private keys are unencrypted PKCS8 PEM files of mode 0600 in folders of mode 0700.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.directory import Directory
from gateway.errors import ConfigError
from gateway.trust import pki
from gateway.trust.pki import Algorithm, IssuerKey, Revocation, SigningKey
from gateway.trust.store import TrustStore


@dataclass(frozen=True)
class KeysLayout:
    """Where each file of a key folder lives."""

    root: Path

    @property
    def trust_pem(self) -> Path:
        return self.root / "trust.pem"

    @property
    def crl_pem(self) -> Path:
        return self.root / "crl.pem"

    @property
    def fingerprints(self) -> Path:
        return self.root / "fingerprints.csv"

    @property
    def root_cert(self) -> Path:
        return self.root / "root" / "cert.pem"

    @property
    def root_key(self) -> Path:
        return self.root / "root" / "key.pem"

    @property
    def intermediate_cert(self) -> Path:
        return self.root / "intermediate" / "cert.pem"

    @property
    def intermediate_key(self) -> Path:
        return self.root / "intermediate" / "key.pem"

    @property
    def gateway_key(self) -> Path:
        return self.root / "gateway" / "key.pem"

    @property
    def gateway_cert(self) -> Path:
        return self.root / "gateway" / "cert.pem"

    @property
    def gateway_chain(self) -> Path:
        return self.root / "gateway" / "chain.pem"

    @property
    def units(self) -> Path:
        return self.root / "units"

    def unit_cert(self, code: str) -> Path:
        return self.units / code / "cert.pem"

    def unit_key(self, code: str) -> Path:
        return self.units / code / "key.pem"

    def unit_old(self, code: str) -> Path:
        return self.units / code / "old"

    def entries(self) -> tuple[Path, ...]:
        """Everything ``init`` creates (and ``--force`` removes); nothing else is touched."""
        return (
            self.trust_pem,
            self.crl_pem,
            self.fingerprints,
            self.root / "root",
            self.root / "intermediate",
            self.root / "gateway",
            self.units,
        )


@dataclass(frozen=True)
class GatewaySigner:
    key: ed25519.Ed25519PrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # gateway cert, intermediate, root


def _pem_key(key: pki.PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write a file atomically (temporary file, then rename); secrets get mode 0600."""
    for folder in reversed(path.parents):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(
            f"{what} is missing: {path} (create the keys with `gateway keys init`)"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from e


def _load_key(path: Path, what: str) -> pki.PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what} {path} is not an unencrypted PEM private key: {e}") from e
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ConfigError(f"{what} {path} is a {type(key).__name__}; EC, RSA or Ed25519 expected")
    return key


def _load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError as e:
        raise ConfigError(f"{what} {path} is not a PEM certificate: {e}") from e


def _issuer(layout: KeysLayout) -> tuple[IssuerKey, x509.Certificate]:
    key = _load_key(layout.intermediate_key, "the intermediate CA key")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("the intermediate CA key must be EC or RSA")
    return key, _load_cert(layout.intermediate_cert, "the intermediate CA certificate")


def _now(now: dt.datetime | None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if now is None else now


def _fingerprints_csv(rows: dict[str, str]) -> bytes:
    lines = ["code,cert_sha256", *(f"{code},{sha}" for code, sha in rows.items())]
    return ("\n".join(lines) + "\n").encode()


def init_keys(
    out: Path,
    directory: Directory,
    *,
    algorithm: Algorithm = "ec",
    force: bool = False,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> KeysLayout:
    """Create a complete development PKI for every unit of ``directory`` in ``out``.

    Refuses (ConfigError) when ``out`` already holds keys, unless ``force``: then the files of
    the layout are replaced and nothing else in ``out`` is touched. ``progress`` is called with
    the number of units done since the last call."""
    layout = KeysLayout(Path(out))
    existing = [p for p in layout.entries() if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{out} already holds keys ({existing[0].name}); pass --force to replace them"
        )
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = _now(now)

    root_key = pki.new_key(algorithm, ca=True)
    root = pki.make_root(root_key, now)
    issuer_key = pki.new_key(algorithm, ca=True)
    issuer = pki.make_intermediate(issuer_key, root_key, root, now)
    _write(layout.root_key, _pem_key(root_key), secret=True)
    _write(layout.root_cert, _pem(root))
    _write(layout.intermediate_key, _pem_key(issuer_key), secret=True)
    _write(layout.intermediate_cert, _pem(issuer))
    _write(layout.trust_pem, _pem(root, issuer))

    gateway_key = ed25519.Ed25519PrivateKey.generate()
    gateway = pki.issue_gateway_certificate(gateway_key.public_key(), issuer_key, issuer, now)
    _write(layout.gateway_key, _pem_key(gateway_key), secret=True)
    _write(layout.gateway_cert, _pem(gateway))
    _write(layout.gateway_chain, _pem(gateway, issuer, root))

    fingerprints: dict[str, str] = {}
    for unit in directory:
        cert = _issue_unit(layout, directory, unit.code, algorithm, issuer_key, issuer, now)
        fingerprints[unit.code] = pki.fingerprint(cert)
        if progress is not None:
            progress(1)
    _write(layout.fingerprints, _fingerprints_csv(fingerprints))
    _write(
        layout.crl_pem,
        pki.make_crl(issuer_key, issuer, [], now).public_bytes(serialization.Encoding.PEM),
    )
    return layout


def _issue_unit(
    layout: KeysLayout,
    directory: Directory,
    code: str,
    algorithm: Algorithm,
    issuer_key: IssuerKey,
    issuer: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    """A new key and certificate for unit ``code`` of ``directory``, written to its folder;
    the organisation in the subject is the unit's top ancestor."""
    unit = directory.get(code)
    if unit is None:
        raise ConfigError(f"{code} is not in the unit directory")
    top = directory.ancestors(code)
    key = pki.new_key(algorithm)
    cert = pki.issue_unit_certificate(
        key.public_key(),
        code,
        unit.name,
        issuer_key,
        issuer,
        now,
        organization=top[-1].name if top else unit.name,
    )
    _write(layout.unit_key(code), _pem_key(key), secret=True)
    _write(layout.unit_cert(code), _pem(cert))
    return cert


def issue_unit(
    keys_dir: Path,
    directory: Directory,
    code: str,
    *,
    algorithm: Algorithm | None = None,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Give a unit that has none a key and certificate under the existing intermediate (a
    unit added to the directory). ``algorithm`` defaults to the intermediate's key type.
    Refuses a unit that has a key already (`rotate_unit` replaces one)."""
    layout = KeysLayout(Path(keys_dir))
    if layout.unit_key(code).exists():
        raise ConfigError(
            f"{code} has a key already ({layout.unit_key(code)}); use `gateway keys rotate`"
        )
    issuer_key, issuer = _issuer(layout)
    if algorithm is None:
        algorithm = "rsa" if isinstance(issuer_key, rsa.RSAPrivateKey) else "ec"
    cert = _issue_unit(layout, directory, code, algorithm, issuer_key, issuer, _now(now))
    _update_fingerprint(layout, code, pki.fingerprint(cert))
    return cert


def load_trust(keys_dir: Path) -> TrustStore:
    """The trust store of a key folder: trust.pem and, when present, crl.pem."""
    layout = KeysLayout(Path(keys_dir))
    if not layout.trust_pem.exists():
        raise ConfigError(
            f"{layout.trust_pem} is missing (create the keys with `gateway keys init`)"
        )
    crl = layout.crl_pem if layout.crl_pem.exists() else None
    return TrustStore.from_files(layout.trust_pem, crl)


def load_unit_signer(keys_dir: Path, code: str) -> tuple[SigningKey, x509.Certificate]:
    """A unit's current signing key and certificate."""
    layout = KeysLayout(Path(keys_dir))
    key = _load_key(layout.unit_key(code), f"the key of {code}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"the key of {code} is Ed25519; packages are signed with EC or RSA keys")
    return key, _load_cert(layout.unit_cert(code), f"the certificate of {code}")


def load_gateway_signer(keys_dir: Path) -> GatewaySigner:
    """The gateway's Ed25519 key, its certificate and chain (receipts, ledger checkpoints)."""
    layout = KeysLayout(Path(keys_dir))
    key = _load_key(layout.gateway_key, "the gateway key")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"the gateway key {layout.gateway_key} must be Ed25519")
    try:
        chain = tuple(
            x509.load_pem_x509_certificates(_read(layout.gateway_chain, "the gateway chain"))
        )
    except ValueError as e:
        raise ConfigError(f"{layout.gateway_chain} is not a PEM certificate chain: {e}") from e
    cert = _load_cert(layout.gateway_cert, "the gateway certificate")
    return GatewaySigner(key, cert, chain)


def _unit_certificates(layout: KeysLayout, code: str) -> list[x509.Certificate]:
    certs = [_load_cert(layout.unit_cert(code), f"the certificate of {code}")]
    old = layout.unit_old(code)
    if old.is_dir():
        certs += [
            _load_cert(p, f"an old certificate of {code}") for p in sorted(old.glob("*.cert.pem"))
        ]
    return certs


def _current_crl(layout: KeysLayout) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(_read(layout.crl_pem, "the CRL"))
    except ValueError as e:
        raise ConfigError(f"{layout.crl_pem} is not a PEM CRL: {e}") from e


def reissue_crl(
    keys_dir: Path,
    add: list[Revocation] | None = None,
    *,
    now: dt.datetime | None = None,
) -> x509.CertificateRevocationList:
    """Issue the next CRL: the current entries plus ``add``, new dates and number."""
    layout = KeysLayout(Path(keys_dir))
    issuer_key, issuer = _issuer(layout)
    current = _current_crl(layout)
    entries = pki.revocations_of(current)
    known = {r.serial for r in entries}
    entries += [r for r in add or [] if r.serial not in known]
    crl = pki.make_crl(issuer_key, issuer, entries, _now(now), number=pki.crl_number(current) + 1)
    _write(layout.crl_pem, crl.public_bytes(serialization.Encoding.PEM))
    return crl


def revoke_unit(
    keys_dir: Path,
    code: str,
    *,
    serial: int | None = None,
    reason: x509.ReasonFlags | None = None,
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, bool]:
    """Revoke a unit's current certificate (or the one with ``serial``, e.g. a rotated one) and
    re-issue the CRL. Returns the certificate and False if it was revoked already."""
    layout = KeysLayout(Path(keys_dir))
    certs = _unit_certificates(layout, code)
    chosen = (
        certs[0] if serial is None else next((c for c in certs if c.serial_number == serial), None)
    )
    if chosen is None:
        raise ConfigError(f"{code} has no certificate with serial {serial:x}")
    already = any(
        r.serial == chosen.serial_number for r in pki.revocations_of(_current_crl(layout))
    )
    now = _now(now)
    reissue_crl(keys_dir, [Revocation(chosen.serial_number, now, reason)], now=now)
    return chosen, not already


def rotate_unit(
    keys_dir: Path,
    code: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Give a unit a new key and certificate (same subject and key type). The old ones move to
    ``units/<code>/old/`` and stay valid until they expire or are revoked. Returns (old, new)."""
    layout = KeysLayout(Path(keys_dir))
    old_key, old_cert = load_unit_signer(keys_dir, code)
    issuer_key, issuer = _issuer(layout)
    algorithm: Algorithm = "rsa" if isinstance(old_key, rsa.RSAPrivateKey) else "ec"
    key = pki.new_key(algorithm)
    now = _now(now)
    cert = pki.issue_certificate(
        key.public_key(),
        old_cert.subject,
        issuer_key,
        issuer,
        not_before=now - pki.BACKDATE,
        not_after=now + dt.timedelta(days=pki.LEAF_DAYS),
    )
    stem = layout.unit_old(code) / f"{old_cert.serial_number:x}"
    _write(stem.with_suffix(".key.pem"), _pem_key(old_key), secret=True)
    _write(stem.with_suffix(".cert.pem"), _pem(old_cert))
    _write(layout.unit_key(code), _pem_key(key), secret=True)
    _write(layout.unit_cert(code), _pem(cert))
    _update_fingerprint(layout, code, pki.fingerprint(cert))
    return old_cert, cert


def _update_fingerprint(layout: KeysLayout, code: str, sha256: str) -> None:
    rows: dict[str, str] = {}
    if layout.fingerprints.exists():
        for line in layout.fingerprints.read_text().splitlines()[1:]:
            unit, _, sha = line.partition(",")
            rows[unit] = sha
    rows[code] = sha256
    _write(layout.fingerprints, _fingerprints_csv(rows))
