"""Signed checkpoints: C2SP ``tlog-checkpoint`` note text, signed as a C2SP ``signed-note`` with
Ed25519 (pure).

A checkpoint note looks like::

    gateway.local/ledger
    1234
    q3+3Ge1pnUYUjgSm8wM+Oj9NRI3THhlS+Lgp8d1tC2M=

    — gateway.local/ledger Bz1j0HcH+Xw...==

Verifier keys use the signed-note text form ``<name>+<key id, 8 hex digits>+<base64(0x01 ||
32-byte public key)>``, so anyone can check a checkpoint with standard note tooling.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import GatewayError
from gateway.ledger.merkle import HASH_SIZE

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
_SIZE = re.compile(r"0|[1-9][0-9]*")


def _invalid(message: str) -> GatewayError:
    return GatewayError("proof_invalid", message)


def check_key_name(name: str) -> str:
    """Key names (and so origins) are non-empty, without spaces or '+'."""
    if not name or "+" in name or any(c.isspace() for c in name):
        raise ValueError(f"{name!r} is not a valid note key name (no spaces, no '+')")
    return name


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey, key_type: bytes = ED25519_TYPE) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4], big-endian (C2SP signed-note)."""
    digest = hashlib.sha256(name.encode() + b"\n" + key_type + _raw(public_key)).digest()
    return int.from_bytes(digest[:4], "big")


def format_vkey(name: str, public_key: Ed25519PublicKey, key_type: bytes = ED25519_TYPE) -> str:
    """``<name>+<hex key id>+<base64(type || key)>``."""
    blob = base64.b64encode(key_type + _raw(public_key)).decode()
    return f"{name}+{key_id(name, public_key, key_type):08x}+{blob}"


def parse_vkey(
    vkey: str, key_type: bytes = ED25519_TYPE, what: str = "an Ed25519 (type 0x01)"
) -> tuple[str, Ed25519PublicKey]:
    """The name and key of ``<name>+<hex key id>+<base64(type || key)>``, whose key id must
    match them (ValueError otherwise); ``what`` names the kind of key in the messages."""
    parts = vkey.strip().split("+", 2)  # base64 may contain "+", names may not
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise ValueError("a key is <name>+<8 hex digits>+<base64 key>")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except binascii.Error as e:
        raise ValueError("the key is not valid base64") from e
    if len(raw) != 33 or raw[:1] != key_type:
        raise ValueError(f"the key is not {what} key")
    name, public_key = check_key_name(parts[0]), Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(name, public_key, key_type) != int(parts[1], 16):
        raise ValueError("the key's id does not match its name and key")
    return name, public_key


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # without the key id


@dataclass(frozen=True)
class Note:
    text: str  # includes the final newline
    signatures: tuple[NoteSignature, ...]


class NoteVerifier:
    """An Ed25519 note verifier: a key name and a public key."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self.name = check_key_name(name)
        self.public_key = public_key
        self.key_id = key_id(name, public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key id>+<base64(0x01 || key)>``; the key id must match."""
        return cls(*parse_vkey(vkey))

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def verify(self, note: str) -> str:
        """The note's text if it carries a valid signature by this key; else proof_invalid.

        Signatures of other keys are ignored (C2SP: verifiers must ignore unknown keys); a
        signature that claims this key and fails rejects the whole note.
        """
        parsed = parse_note(note)
        found = False
        for sig in parsed.signatures:
            if sig.name != self.name or sig.key_id != self.key_id:
                continue
            try:
                self.public_key.verify(sig.signature, parsed.text.encode())
            except InvalidSignature as e:
                raise _invalid(f"the signature by {self.name} does not verify") from e
            found = True
        if not found:
            raise _invalid(f"the note carries no signature by key {self.name}+{self.key_id:08x}")
        return parsed.text


class NoteSigner(NoteVerifier):
    """Signs notes with an Ed25519 private key under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(name, private_key.public_key())
        self._private_key = private_key

    def sign(self, text: str) -> str:
        """The signed note: text, a blank line, one signature line."""
        _check_text(text)
        signature = self._private_key.sign(text.encode())
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ValueError("note text must not contain control characters")


def parse_note(note: str) -> Note:
    """Split a signed note into its text and signature lines (signatures not checked)."""
    if not note.endswith("\n"):
        raise _invalid("a signed note ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise _invalid("a signed note contains control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise _invalid("a signed note has no blank line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    signatures: list[NoteSignature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise _invalid(f"not a signature line: {line[:40]!r}")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            check_key_name(name)
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error) as e:
            raise _invalid(f"malformed signature line: {line[:40]!r}") from e
        if len(raw) < 5:
            raise _invalid("a signature is too short")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    if not signatures:
        raise _invalid("a signed note has no signature")
    if len(signatures) > MAX_SIGNATURES:
        raise _invalid("a signed note has too many signatures")
    return Note(text, tuple(signatures))


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and the RFC 6962 root hash at that size."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        check_key_name(self.origin)
        if self.size < 0:
            raise ValueError("a tree size is not negative")
        if len(self.root) != HASH_SIZE:
            raise ValueError(f"a root hash is {HASH_SIZE} bytes")

    @property
    def text(self) -> str:
        """The C2SP tlog-checkpoint note text (no extension lines)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, signer: NoteSigner) -> str:
        return signer.sign(self.text)


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint's note text (extension lines are allowed and ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
        raise _invalid("a checkpoint is at least three non-empty lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not _SIZE.fullmatch(size):
        raise _invalid(f"checkpoint tree size {size[:30]!r} is not a decimal number")
    try:
        raw = base64.b64decode(root, validate=True)
        return Checkpoint(origin, int(size), raw)
    except (ValueError, binascii.Error) as e:
        raise _invalid(f"malformed checkpoint: {e}") from e


def open_checkpoint(note: str, verifier: NoteVerifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint and return it; the origin must match when given."""
    checkpoint = parse_checkpoint(verifier.verify(note))
    if origin is not None and checkpoint.origin != origin:
        raise _invalid(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint
