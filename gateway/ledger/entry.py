"""Ledger events and the canonical bytes of an entry, from which its Merkle leaf is computed (pure).

The canonical bytes are one JSON object with every key present, keys sorted, no insignificant
whitespace, UTF-8, integers only (RFC 8785 for this subset), for example::

    {"code":null,"details":{},"document":"000.00.05.H07|000.00.05.H07,2025/01/15,12/UBND",
     "package_sha256":"9f86d0...","recipient":"000.01.05.H07","sender":"000.00.05.H07",
     "seq":41,"time":"2025-01-15T08:30:00.123456Z","type":"submitted","v":1}

(one line in reality). ``seq`` and ``time`` are inside the bytes, so a row moved, swapped or
renumbered no longer matches its own leaf.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.ledger.merkle import leaf_hash

FORMAT_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_LENGTHS = {"document": 300, "sender": 64, "recipient": 64, "code": 64}
MAX_DETAILS_BYTES = 4096


class EventType(enum.StrEnum):
    SUBMITTED = "submitted"  # accepted from the sender
    REJECTED = "rejected"  # refused; ``code`` is the catalogue code
    QUEUED = "queued"  # handed to the bus for one recipient
    DELIVERED = "delivered"  # the recipient has it
    RETRYING = "retrying"  # a delivery attempt failed and will be retried
    EXPIRED = "expired"  # TTL passed undelivered
    DEAD_LETTERED = "dead_lettered"  # given up; an operator must act
    REDRIVEN = "redriven"  # an operator sent it again
    STATUS = "status"  # a business status packet; ``code`` is 01..16
    OPERATOR = "operator"  # an operator action; ``code`` names it, details the actor
    NOTIFIED = "notified"  # the sender received the notice of an expiry, dead letter, redrive


@dataclass(frozen=True)
class Event:
    """What a caller appends. The ledger adds the sequence number and the time.

    ``document`` is the document key (``Package.document_key``: sender OrganId | DocumentId);
    ``code`` is the status code (01..16) or the error code; ``details`` holds small extra facts
    (strings, integers, booleans, null, lists and objects of them; no floats).
    """

    type: EventType
    document: str | None = None
    sender: str | None = None
    recipient: str | None = None
    package_sha256: str | None = None
    code: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", EventType(self.type))
        for name, limit in MAX_LENGTHS.items():
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str) or not value or len(value) > limit or _has_control(value)
            ):
                raise ValueError(f"event {name} must be 1..{limit} printable characters")
        sha = self.package_sha256
        if sha is not None and not _HEX64.fullmatch(sha):
            raise ValueError("package_sha256 must be 64 lower-case hex digits")
        _check_json(self.details, "details")
        if self.details and len(_dumps(self.details)) > MAX_DETAILS_BYTES:
            raise ValueError(f"event details exceed {MAX_DETAILS_BYTES} bytes")

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        """The event of an entry's JSON object (its canonical bytes, or the HTTP API's rows)."""
        return cls(
            type=EventType(obj["type"]),
            document=obj["document"],
            sender=obj["sender"],
            recipient=obj["recipient"],
            package_sha256=obj["package_sha256"],
            code=obj["code"],
            details=obj.get("details") or {},
        )


@dataclass(frozen=True)
class Entry:
    """One stored entry: an event at a sequence number and time, with its canonical bytes."""

    seq: int
    time: datetime
    event: Event

    @property
    def data(self) -> bytes:
        return canonical_bytes(self.seq, self.time, self.event)

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.data)

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (the same fields as its canonical bytes)."""
        return _object(self.seq, self.time, self.event)


@functools.lru_cache(maxsize=16)  # a batch of entries shares one time
def format_time(t: datetime) -> str:
    """UTC, microseconds, ``Z``: the only time form in canonical bytes."""
    if t.tzinfo is None:
        raise ValueError("entry times must be timezone-aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not _TIME.fullmatch(text):
        raise ValueError(f"{text!r} is not a canonical entry time")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def canonical_bytes(seq: int, time: datetime, event: Event) -> bytes:
    return _dumps(_object(seq, time, event))


def _object(seq: int, time: datetime, event: Event) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "time": format_time(time),
        "type": event.type.value,
        "document": event.document,
        "sender": event.sender,
        "recipient": event.recipient,
        "package_sha256": event.package_sha256,
        "code": event.code,
        "details": dict(event.details),
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_entry(data: bytes) -> Entry:
    """Read canonical entry bytes; ValueError unless they are exactly canonical."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"entry bytes are not UTF-8 JSON: {e}") from e
    expected = {
        "v",
        "seq",
        "time",
        "type",
        "document",
        "sender",
        "recipient",
        "package_sha256",
        "code",
        "details",
    }
    if not isinstance(obj, dict) or set(obj) != expected:
        raise ValueError("entry bytes do not have the entry fields")
    if obj["v"] != FORMAT_VERSION:
        raise ValueError(f"unknown entry format version {obj['v']!r}")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("entry seq is not a non-negative integer")
    if not isinstance(obj["time"], str) or not isinstance(obj["details"], dict):
        raise ValueError("entry time or details have the wrong type")
    entry = Entry(seq, parse_time(obj["time"]), Event.from_json(obj))
    if entry.data != data:
        raise ValueError("entry bytes are not in canonical form")
    return entry


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings")
            _check_json(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not allowed (no floats, no objects)")
