"""The national axis's REST protocol as the façade reads and answers it: the ``XroadVnpt-``
headers, the HMAC-SHA256 request signature, the timestamp and the reply shape. Pure: headers
in, values or a refusal out (docs/national-axis.md says what is read how, and why)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from gateway.errors import GatewayError

PREFIX = "XroadVnpt-"
SIGN_HEADER = PREFIX + "sign-header"
SIGN_KEYS = PREFIX + "sign-header-key"
HASH_HEADER = PREFIX + "hash-header"

# The SDKs stamp requests with the local time of the machine they run on and no zone: in
# Vietnam, UTC+7 (there is no daylight saving time).
VIETNAM = timezone(timedelta(hours=7), "ICT")
# ddMMyyyy'T'HHmmss+SSSS: the four digits after '+' are read as milliseconds, which is what
# the pattern prints; a zone written there ("+0700") is then under a second and harmless.
_STAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})")

# Signed in every request: without them a signature could be replayed at any time.
ALWAYS_SIGNED = ("systemid", "timestamp")


def reply(data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OK reply with the call's data members."""
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **(data or {})}


def failure(code: str, description: str) -> dict[str, Any]:
    """A FAIL reply: the gateway's error code and what went wrong."""
    return {"status": "FAIL", "ErrorCode": code, "ErrorDesc": description}


def parse_timestamp(text: str) -> datetime:
    match = _STAMP.fullmatch(text.strip())
    if match is None:
        raise GatewayError(
            "unauthenticated", f"{PREFIX}timestamp {text!r} is not ddMMyyyyTHHmmss+SSSS"
        )
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=VIETNAM)
    except ValueError as e:
        raise GatewayError("unauthenticated", f"{PREFIX}timestamp {text!r}: {e}") from e
    return when + timedelta(milliseconds=millis % 1000)


def format_timestamp(at: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time, milliseconds after the ``+``: how the SDK
    stamps a request (what ``parse_timestamp`` reads)."""
    at = at.astimezone(VIETNAM)
    return at.strftime("%d%m%YT%H%M%S") + f"+{at.microsecond // 1000:04d}"


def signature_of(secret: str, signed_text: str) -> str:
    """Lowercase hex HMAC-SHA256 of the exact text of the sign-header under the secret."""
    return hmac.new(secret.encode("utf-8"), signed_text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """A request's signed parameters, each checked against its own header."""

    system_id: str
    stamp: str
    signed_text: str  # the sign-header exactly as sent: what the HMAC covers
    signature: str  # the hash-header, lowercase
    params: dict[str, str]  # parameter name (lower case) -> the header's value

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(signature_of(secret, self.signed_text), self.signature)


def _same(signed: Any, header: str) -> bool:
    """A signed value names its header's value: the same text, or (for ``to``, a JSON array)
    the same JSON value."""
    if isinstance(signed, str):
        return signed == header
    try:
        return bool(json.loads(header) == signed)
    except ValueError:
        return False


def read_signed(headers: Mapping[str, str], needs: Collection[str]) -> SignedRequest:
    """The request's signed parameters: the sign-header must be a JSON object, its names those
    of the sign-header-key list, each equal to its own ``XroadVnpt-<name>`` header, and it
    must sign at least the system, the timestamp and every parameter the call reads
    (``needs``): a parameter outside the signature would be one anyone could change."""
    text = headers.get(SIGN_HEADER)
    names_text = headers.get(SIGN_KEYS)
    signature = headers.get(HASH_HEADER)
    if not text or not names_text or not signature:
        raise GatewayError("unauthenticated", f"send {SIGN_HEADER}, {SIGN_KEYS} and {HASH_HEADER}")
    try:
        signed = json.loads(text)
    except ValueError as e:
        raise GatewayError("unauthenticated", f"{SIGN_HEADER} is not JSON: {e}") from e
    if not isinstance(signed, dict):
        raise GatewayError("unauthenticated", f"{SIGN_HEADER} is not a JSON object")
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    by_lower = {str(k).lower(): v for k, v in signed.items()}
    if sorted(n.lower() for n in names) != sorted(by_lower) or len(by_lower) != len(signed):
        raise GatewayError("unauthenticated", f"{SIGN_KEYS} does not list {SIGN_HEADER}'s names")
    missing = [n for n in (*ALWAYS_SIGNED, *needs) if n.lower() not in by_lower]
    if missing:
        raise GatewayError(
            "unauthenticated", f"these parameters must be signed: {', '.join(missing)}"
        )
    params: dict[str, str] = {}
    for name, value in by_lower.items():
        header = headers.get(PREFIX + name)
        if header is None or not _same(value, header):
            raise GatewayError(
                "unauthenticated", f"{PREFIX}{name} is not the value signed in {SIGN_HEADER}"
            )
        params[name] = header
    return SignedRequest(
        params["systemid"], params["timestamp"], text, signature.strip().lower(), params
    )
