"""The national axis's REST protocol as a connected system speaks it (docs/national-axis.md):
every parameter in an ``XroadVnpt-`` header, all of them signed with HMAC-SHA256 under the
link's secret. A FAIL reply is raised as ``UpstreamRefused`` with the upstream's code; a
transport failure as ``UpstreamUnavailable``."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from adapters.upstream.links import Link
from gateway.api.vxp_protocol import (
    HASH_HEADER,
    PREFIX,
    SIGN_HEADER,
    SIGN_KEYS,
    format_timestamp,
    signature_of,
)
from gateway.bus import RetryableDeliveryError
from gateway.errors import GatewayError

VERSION = "3.0.201608"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)
# A refusal the upstream may not repeat later: its own failure, its rate limit, a request
# refused for its timestamp or novelty (our clock, a retry stamped in the same millisecond),
# and a status that overtook the one before it on the way (01 retried while 03 went through).
TRANSIENT_CODES = frozenset(
    {
        "internal_error",
        "rate_limited",
        "unauthenticated",
        "database_unavailable",
        "bus_unavailable",
        "status_out_of_order",
    }
)


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or did not answer in the protocol's shape."""


class UpstreamRefused(Exception):
    """The upstream answered FAIL."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES


@dataclass
class AxisClient:
    """One link's client: ``session`` is shared by the calls."""

    link: Link
    session: aiohttp.ClientSession

    def headers(self, params: dict[str, str]) -> dict[str, str]:
        signed = {
            "systemid": self.link.system_id,
            "timestamp": format_timestamp(datetime.now(UTC)),
            **params,
        }
        text = json.dumps(signed, separators=(",", ":"), ensure_ascii=False)
        return {
            **{PREFIX + name: value for name, value in signed.items()},
            SIGN_HEADER: text,
            SIGN_KEYS: ",".join(signed),
            HASH_HEADER: signature_of(self.link.secret.reveal(), text),
            PREFIX + "version": VERSION,
            "User-Agent": USER_AGENT,
        }

    async def call(
        self,
        name: str,
        params: dict[str, str] | None = None,
        *,
        body: bytes | None = None,
        method: str = "POST",
    ) -> dict[str, Any]:
        """One call: the reply's JSON members when it is OK."""
        headers = self.headers(params or {})
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        url = f"{self.link.url}/{name}"
        try:
            async with self.session.request(
                method, url, headers=headers, data=body, timeout=TIMEOUT
            ) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise UpstreamUnavailable(f"{url} answered HTTP {response.status}: {text}")
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise UpstreamUnavailable(f"{url}: {type(e).__name__}: {e}") from e
        if not isinstance(reply, dict) or "status" not in reply:
            raise UpstreamUnavailable(f"{url} did not answer in the protocol's shape")
        if reply["status"] != "OK":
            raise UpstreamRefused(str(reply.get("ErrorCode")), str(reply.get("ErrorDesc", "")))
        return reply

    async def send_edoc(
        self, data: bytes, sender: str, to: list[str], service_type: str, message_type: str
    ) -> str:
        """Send a package; the upstream's DocId for it."""
        params = {
            "from": sender,
            "to": json.dumps(to),
            "servicetype": service_type,
            "messagetype": message_type,
            "hash-file": hashlib.sha256(data).hexdigest(),
        }
        return str((await self.call("sendEdoc", params, body=data)).get("DocId", ""))

    async def received(self, service_type: str) -> list[dict[str, Any]]:
        message_type = "status" if service_type == "status" else "edoc"
        params = {"servicetype": service_type, "messagetype": message_type}
        data = (await self.call("getReceivedEdocList", params)).get("data") or []
        if not isinstance(data, list):
            raise UpstreamUnavailable("getReceivedEdocList's data is not a list")
        return [item for item in data if isinstance(item, dict) and item.get("docId")]

    async def get_edoc(self, doc_id: str) -> bytes:
        data = (await self.call("getEdoc", {"docId": doc_id})).get("data")
        try:
            return base64.b64decode(str(data), validate=True)
        except ValueError as e:
            raise UpstreamUnavailable(f"getEdoc {doc_id}: data is not base64") from e

    async def update_status(self, doc_id: str, status: str) -> None:
        await self.call("updateStatus", {"docId": doc_id, "status": status})

    async def agencies(self) -> list[dict[str, Any]]:
        data = (await self.call("getAgenciesList")).get("data") or []
        if not isinstance(data, list):
            raise UpstreamUnavailable("getAgenciesList's data is not a list")
        return [unit for unit in data if isinstance(unit, dict) and unit.get("code")]


def refusal(error: UpstreamRefused | UpstreamUnavailable) -> GatewayError:
    """What a failed call means for a copy: retried later, or refused for good."""
    if isinstance(error, UpstreamRefused) and not error.transient:
        return GatewayError("delivery_failed", f"the upstream refused it: {error}")
    return RetryableDeliveryError(str(error))
