"""An agency system's client of the national axis, written from the protocol's public
description (the way its SDK builds requests), not from the gateway's code: every parameter in
an ``XroadVnpt-`` header, the signed ones as one JSON object in ``XroadVnpt-sign-header``,
their names in ``XroadVnpt-sign-header-key``, the HMAC-SHA256 of that JSON text under the
shared secret in ``XroadVnpt-hash-header``, and the file's SHA-256 in ``XroadVnpt-hash-file``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp

VIETNAM = timezone(timedelta(hours=7))  # the SDK stamps requests with Vietnam's local time
VERSION = "3.0.201608"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"


def timestamp(at: datetime | None = None) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS``: local time, then milliseconds as four digits."""
    at = (at or datetime.now(UTC)).astimezone(VIETNAM)
    return at.strftime("%d%m%YT%H%M%S") + f"+{at.microsecond // 1000:04d}"


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SdkClient:
    """One connected system: its endpoint (``…/vxp``), systemId and secret."""

    endpoint: str
    system_id: str
    secret: str
    session: aiohttp.ClientSession

    def headers(self, params: dict[str, str], *, at: datetime | None = None) -> dict[str, str]:
        """The request's headers, every parameter signed."""
        signed = {"systemid": self.system_id, "timestamp": timestamp(at), **params}
        text = json.dumps(signed, separators=(",", ":"))
        digest = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        headers = {f"XroadVnpt-{name}": value for name, value in signed.items()}
        headers |= {
            "XroadVnpt-sign-header": text,
            "XroadVnpt-sign-header-key": ",".join(signed),
            "XroadVnpt-hash-header": digest,
            "XroadVnpt-version": VERSION,
            "User-Agent": USER_AGENT,
        }
        return headers

    async def send(
        self,
        name: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        method: str = "POST",
    ) -> Any:
        """One call with headers already made: the JSON reply, or the bytes of a file."""
        if body is not None:
            headers = {**headers, "Content-Type": "application/octet-stream"}
        url = f"{self.endpoint}/{name}"
        data = None if body is None else io.BytesIO(body)  # streamed, as a file is
        async with self.session.request(method, url, headers=headers, data=data) as response:
            assert response.status == 200, f"{name}: HTTP {response.status}"
            if response.content_type == "application/octet-stream":
                return await response.read()
            return await response.json()

    async def call(
        self, name: str, params: dict[str, str] | None = None, *, method: str = "POST"
    ) -> Any:
        return await self.send(name, self.headers(params or {}), method=method)

    async def send_edoc(
        self,
        data: bytes,
        to: list[str],
        *,
        servicetype: str = "eDoc",
        messagetype: str = "edoc",
    ) -> dict[str, Any]:
        params = {
            "from": self.system_id,
            "to": json.dumps(to),
            "servicetype": servicetype,
            "messagetype": messagetype,
            "hash-file": file_hash(data),
        }
        reply: dict[str, Any] = await self.send("sendEdoc", self.headers(params), body=data)
        return reply

    async def received(self, servicetype: str = "eDoc") -> dict[str, Any]:
        messagetype = "status" if servicetype == "status" else "edoc"
        reply: dict[str, Any] = await self.call(
            "getReceivedEdocList", {"servicetype": servicetype, "messagetype": messagetype}
        )
        return reply

    async def update_status(self, doc_id: str, status: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self.call("updateStatus", {"docId": doc_id, "status": status})
        return reply
