"""The certificates whose expiry operators watch: the trust bundle's, and each unit's signer
certificate where the gateway holds a copy (the development key folder's ``units/<code>/``).
Read again only when a file changes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.trust.keyfiles import KeysLayout
from gateway.trust.pki import fingerprint


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """Who a certificate is (the unit code, or ``trust`` for the bundle), its subject, its
    SHA-256 fingerprint and when it expires."""

    owner: str
    subject: str
    sha256: str
    not_after: datetime


class Certificates:
    """The certificates of the trust bundle and of units' files, cached by file stamp."""

    def __init__(self, trust: Path, keys: Path | None) -> None:
        self.trust = trust
        self.layout = KeysLayout(keys) if keys is not None else None
        self._cache: dict[Path, tuple[tuple[int, int], list[CertificateFacts]]] = {}

    def _read(self, path: Path, owner: str) -> list[CertificateFacts]:
        try:
            st = os.stat(path)
        except OSError:
            return []
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError):
            certs = []
        facts = [
            CertificateFacts(
                owner, c.subject.rfc4514_string(), fingerprint(c), c.not_valid_after_utc
            )
            for c in certs
        ]
        self._cache[path] = (stamp, facts)
        return facts

    def bundle(self) -> list[CertificateFacts]:
        return self._read(self.trust, "trust")

    def of_unit(self, code: str) -> CertificateFacts | None:
        if self.layout is None:
            return None
        found = self._read(self.layout.unit_cert(code), code)
        return found[0] if found else None
