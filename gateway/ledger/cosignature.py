"""Witness cosignatures of checkpoints, in the C2SP ``tlog-cosignature`` format (pure).

A witness that has checked a checkpoint is consistent with every one it saw before signs
``cosignature/v1\\ntime <T>\\n`` followed by the checkpoint's note text with its own Ed25519
key; the signature line it adds to the note is ``— <name> base64(key id || T as 8 bytes
big-endian || signature)``, with ``key id = SHA-256(name || 0x0A || 0x04 || public key)[:4]``.
Its verifier key is ``<name>+<key id hex>+base64(0x04 || public key)``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import GatewayError
from gateway.ledger.checkpoint import (
    SIGNATURE_PREFIX,
    check_key_name,
    format_vkey,
    key_id,
    parse_note,
    parse_vkey,
)

COSIGNATURE_TYPE = b"\x04"


def _invalid(message: str) -> GatewayError:
    return GatewayError("proof_invalid", message)


def cosignature_message(note_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + note_text.encode()


class WitnessKey:
    """A witness's public key under its name."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self.name = check_key_name(name)
        self.public_key = public_key
        self.key_id = key_id(name, public_key, COSIGNATURE_TYPE)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key, COSIGNATURE_TYPE)

    @classmethod
    def from_vkey(cls, vkey: str) -> WitnessKey:
        return cls(*parse_vkey(vkey, COSIGNATURE_TYPE, "a cosignature/v1 (type 0x04)"))


class Witness(WitnessKey):
    """A witness's private key: cosigns checkpoints it has checked."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(name, private_key.public_key())
        self._private_key = private_key

    def cosign(self, note_text: str, timestamp: int) -> str:
        """The cosignature line (with its newline) for a checkpoint's note text."""
        signature = self._private_key.sign(cosignature_message(note_text, timestamp))
        blob = self.key_id.to_bytes(4, "big") + timestamp.to_bytes(8, "big") + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    witness: str  # its name
    timestamp: int  # seconds since the epoch, as the witness signed it
    line: str


def _split(line: str) -> tuple[str, bytes]:
    name, _, blob = line.rstrip("\n").removeprefix(SIGNATURE_PREFIX).partition(" ")
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError as e:  # binascii.Error, or a character outside ASCII
        raise _invalid("a cosignature line is not base64") from e
    if not line.startswith(SIGNATURE_PREFIX) or len(raw) != 4 + 8 + 64:
        raise _invalid("a cosignature line is an em dash, a name and 76 bytes of base64")
    return name, raw


def witness_of(line: str, witnesses: Sequence[WitnessKey]) -> WitnessKey:
    """The witness whose name and key id a cosignature line claims; witness_unknown."""
    name, raw = _split(line)
    key_id = int.from_bytes(raw[:4], "big")
    for w in witnesses:
        if (w.name, w.key_id) == (name, key_id):
            return w
    raise GatewayError("witness_unknown", f"no witness {name}+{key_id:08x} is configured")


def verify_cosignature(note: str, line: str, key: WitnessKey) -> Cosignature:
    """Check one cosignature line by ``key`` over the checkpoint ``note``; proof_invalid."""
    text = parse_note(note).text
    name, raw = _split(line)
    if name != key.name or int.from_bytes(raw[:4], "big") != key.key_id:
        raise _invalid(f"the cosignature is not by witness {key.name}+{key.key_id:08x}")
    timestamp = int.from_bytes(raw[4:12], "big")
    try:
        key.public_key.verify(raw[12:], cosignature_message(text, timestamp))
    except InvalidSignature as e:
        raise _invalid(f"the cosignature by {key.name} does not verify") from e
    return Cosignature(key.name, timestamp, line if line.endswith("\n") else line + "\n")


def cosignatures_in(note: str, keys: Sequence[WitnessKey]) -> list[Cosignature]:
    """The valid cosignatures in a (cosigned) checkpoint note by any of ``keys``; a line that
    claims one of them and does not verify fails the whole note, as C2SP asks."""
    parsed = parse_note(note)
    by_id = {(k.name, k.key_id): k for k in keys}
    found: dict[str, Cosignature] = {}
    for sig in parsed.signatures:
        key = by_id.get((sig.name, sig.key_id))
        if key is None:
            continue
        blob = sig.key_id.to_bytes(4, "big") + sig.signature
        line = f"{SIGNATURE_PREFIX}{sig.name} {base64.b64encode(blob).decode()}\n"
        found[key.vkey] = verify_cosignature(note, line, key)
    return list(found.values())


def with_cosignatures(note: str, lines: list[str]) -> str:
    """The checkpoint note with the cosignature lines added after the gateway's signature."""
    return note + "".join(line if line.endswith("\n") else line + "\n" for line in lines)
