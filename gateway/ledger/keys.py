"""The gateway's checkpoint-signing key and certificate chain, as ``gateway keys init`` lays them
out: ``<keys>/gateway/key.pem`` (Ed25519, PKCS8 PEM), ``cert.pem`` and ``chain.pem``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.config import Settings
from gateway.errors import ConfigError

HOW_TO_CREATE = "create it with `gateway keys init` (or point GATEWAY_KEYS / --keys at the folder)"


@dataclass(frozen=True)
class GatewayKey:
    private_key: Ed25519PrivateKey
    certificate_chain: str | None  # PEM: cert.pem then chain.pem, when present


def keys_dir(settings: Settings) -> Path:
    """GATEWAY_KEYS, else ``<home>/keys`` (where the embedded gateway creates its PKI)."""
    return settings.keys if settings.keys is not None else settings.home / "keys"


def load_gateway_key(folder: Path) -> GatewayKey:
    """Read the signing key and its chain; ConfigError saying what to run if missing."""
    path = folder / "gateway" / "key.pem"
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"the gateway signing key {path} does not exist; {HOW_TO_CREATE}") from e
    except OSError as e:
        raise ConfigError(f"cannot read the gateway signing key {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not an unencrypted PKCS8 PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key; checkpoints are signed with Ed25519")
    return GatewayKey(key, load_certificate_chain(folder))


def load_gateway_public_key(folder: Path) -> Ed25519PublicKey:
    """The public key from ``cert.pem`` (or from ``key.pem`` when there is no certificate)."""
    cert = folder / "gateway" / "cert.pem"
    if cert.exists():
        key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{cert} does not hold an Ed25519 key")
        return key
    return load_gateway_key(folder).private_key.public_key()


def load_certificate_chain(folder: Path) -> str | None:
    """``cert.pem`` then ``chain.pem`` (PEM), or None when there is no certificate."""
    parts = []
    for name in ("cert.pem", "chain.pem"):
        path = folder / "gateway" / name
        if path.exists():
            parts.append(path.read_text(encoding="ascii").strip() + "\n")
    return "".join(parts) or None
