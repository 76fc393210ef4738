"""Signed acknowledgements of reception: a compact JWS (RFC 7515) by the recipient unit's own
key over a small statement (the delivery id, the package's SHA-256, the recipient's OrganId,
the time), with the signer's certificate chain in ``x5c``. Pure: bytes, a trust store and a
clock in; a verified statement or a GatewayError out.

ES256 (P-256), ES384 (P-384) and RS256 are the algorithms of the unit keys that already sign
edXML packages, so a unit signs both with one key and one certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.errors import GatewayError, PackageRejected
from gateway.trust.pki import SigningKey
from gateway.trust.store import Signer, TrustStore

TYPE = "gateway-ack+jws"
MAX_ACK_BYTES = 16_384  # a statement and a chain of three certificates fit in a quarter of it
CLOCK_SKEW = dt.timedelta(minutes=5)  # how far in the future a statement's time may be
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CURVES = {"ES256": ("secp256r1", hashes.SHA256(), 32), "ES384": ("secp384r1", hashes.SHA384(), 48)}


def _invalid(message: str) -> GatewayError:
    return GatewayError("ack_invalid", message)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise _invalid("a JWS part is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ack_sha256(jws: str) -> str:
    """The acknowledgement's fingerprint, as the ledger records it."""
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Statement:
    """What the recipient says: it received this copy, with these bytes, at this time."""

    delivery_id: str
    package_sha256: str
    recipient: str
    time: dt.datetime

    def to_json(self) -> dict[str, str]:
        return {
            "delivery_id": self.delivery_id,
            "package_sha256": self.package_sha256,
            "recipient": self.recipient,
            "time": self.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _algorithm(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    for alg, (curve, _, _) in _CURVES.items():
        if key.curve.name == curve:
            return alg
    raise ValueError(f"no JWS algorithm for the curve {key.curve.name}")


def sign_ack(
    statement: Statement,
    key: SigningKey,
    cert: x509.Certificate,
    chain: tuple[x509.Certificate, ...] = (),
) -> str:
    """The compact JWS of ``statement`` signed with the unit's key, ``x5c`` = its chain."""
    alg = _algorithm(key)
    header = {
        "alg": alg,
        "typ": TYPE,
        "x5c": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (cert, *chain)
        ],
    }
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(statement.to_json(), separators=(",", ":")).encode())
    )
    data = signing_input.encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        _, digest, size = _CURVES[alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return signing_input + "." + _b64url(signature)


@dataclass(frozen=True)
class ParsedAck:
    statement: Statement
    certificates: tuple[x509.Certificate, ...]  # x5c: the signer first
    algorithm: str
    signing_input: bytes
    signature: bytes


def parse_ack(jws: str) -> ParsedAck:
    """Read an acknowledgement without checking its signature; ack_invalid when malformed."""
    if not isinstance(jws, str) or len(jws) > MAX_ACK_BYTES:
        raise _invalid(f"an acknowledgement is a compact JWS of at most {MAX_ACK_BYTES} bytes")
    parts = jws.split(".")
    if len(parts) != 3:
        raise _invalid("an acknowledgement is a compact JWS: three base64url parts")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        certs = tuple(
            x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
            for c in header["x5c"]
        )
        statement = _statement(claims)
        alg = header["alg"]
    except (ValueError, KeyError, TypeError, x509.InvalidVersion) as e:
        raise _invalid(f"malformed acknowledgement: {e}") from e
    if header.get("typ") != TYPE or set(header) - {"alg", "typ", "x5c"}:
        raise _invalid(f"the JWS header must be typ {TYPE} with alg and x5c only")
    if alg not in ("RS256", *_CURVES) or not certs:
        raise _invalid(f"alg {alg!r} is not RS256, ES256 or ES384, or x5c is empty")
    return ParsedAck(
        statement, certs, alg, f"{parts[0]}.{parts[1]}".encode("ascii"), _unb64url(parts[2])
    )


def _statement(claims: Any) -> Statement:
    if not isinstance(claims, dict) or set(claims) != {
        "delivery_id",
        "package_sha256",
        "recipient",
        "time",
    }:
        raise ValueError("the statement holds delivery_id, package_sha256, recipient and time")
    if not all(isinstance(v, str) for v in claims.values()):
        raise ValueError("the statement's members are strings")
    if not _HEX64.fullmatch(claims["package_sha256"]):
        raise ValueError("package_sha256 is 64 lower-case hex digits")
    time = dt.datetime.strptime(claims["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return Statement(claims["delivery_id"], claims["package_sha256"], claims["recipient"], time)


def check_signature(ack: ParsedAck) -> None:
    """The JWS signature verifies with the key of the first x5c certificate (the certificate
    itself is not judged here)."""
    key = ack.certificates[0].public_key()
    try:
        if ack.algorithm == "RS256":
            if not isinstance(key, rsa.RSAPublicKey):
                raise _invalid("alg RS256 but the certificate's key is not RSA")
            key.verify(ack.signature, ack.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return
        curve, digest, size = _CURVES[ack.algorithm]
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve:
            raise _invalid(f"alg {ack.algorithm} but the certificate's key is not {curve}")
        if len(ack.signature) != 2 * size:
            raise _invalid(f"an {ack.algorithm} signature is {2 * size} bytes")
        der = encode_dss_signature(
            int.from_bytes(ack.signature[:size], "big"), int.from_bytes(ack.signature[size:], "big")
        )
        key.verify(der, ack.signing_input, ec.ECDSA(digest))
    except InvalidSignature as e:
        raise _invalid("the acknowledgement's signature does not verify") from e


@dataclass(frozen=True)
class VerifiedAck:
    statement: Statement
    signer: Signer
    sha256: str  # of the JWS text


def verify_ack(
    jws: str,
    trust: TrustStore,
    *,
    at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> VerifiedAck:
    """Check the JWS signature and the signer's certificate in the trust store at the
    statement's time (``at`` overrides it); the time must not be ahead of ``now``.

    Raises ack_invalid, or the trust store's certificate codes (cert_untrusted, cert_revoked…).
    Whether the signer may speak for the recipient is the caller's check (the directory's)."""
    ack = parse_ack(jws)
    check_signature(ack)
    when = ack.statement.time
    if now is not None and when > now + CLOCK_SKEW:
        raise _invalid(f"the acknowledgement is dated {when:%Y-%m-%d %H:%M}Z, in the future")
    try:
        signer = trust.check_signer(ack.certificates[0], at or when, ack.certificates[1:])
    except PackageRejected as e:
        raise GatewayError(e.code, f"the acknowledgement's signer: {e.message}") from e
    return VerifiedAck(ack.statement, signer, ack_sha256(jws))
