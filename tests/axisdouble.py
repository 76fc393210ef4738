"""The national axis as a province gateway sees it upstream, for tests: it checks each
request's signature the way the protocol says (tests/vxpsdk.py's counterpart, written from
the protocol), holds letters and status packets for the connected system, and records what
the system sends and acknowledges."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.api.vxp_protocol import read_signed

SYSTEM_ID = "000.00.00.H07"  # the province gateway's systemId at the axis
SECRET = "axis-issued-secret-for-the-province"


@dataclass
class Held:
    doc_id: str
    service_type: str  # eDoc | status
    data: bytes
    sender: str


@dataclass
class AxisDouble:
    held: list[Held] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # docId -> updateStatus status
    sent: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # (params, file)
    agencies: list[dict[str, object]] = field(default_factory=list)
    refused: int = 0  # requests whose signature did not verify

    def hold(self, service_type: str, data: bytes, sender: str) -> str:
        doc_id = f"axis-{len(self.held) + 1}"
        self.held.append(Held(doc_id, service_type, data, sender))
        return doc_id

    def _signed(self, request: web.Request, needs: tuple[str, ...]) -> dict[str, str] | None:
        signed = read_signed(request.headers, needs)
        if signed.system_id != SYSTEM_ID or not signed.matches(SECRET):
            self.refused += 1
            return None
        return signed.params

    async def handle(self, request: web.Request) -> web.Response:
        call = request.match_info["call"]
        needs = {
            "sendEdoc": ("from", "to", "servicetype", "messagetype", "hash-file"),
            "getReceivedEdocList": ("servicetype", "messagetype"),
            "getEdoc": ("docId",),
            "updateStatus": ("docId", "status"),
        }.get(call, ())
        params = self._signed(request, needs)
        if params is None:
            return web.json_response({"status": "FAIL", "ErrorCode": "unauthenticated"})
        ok = {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}
        if call == "sendEdoc":
            body = await request.read()
            assert hashlib.sha256(body).hexdigest() == params["hash-file"]
            self.sent.append((params, body))
            return web.json_response(ok | {"DocId": f"axis-in-{len(self.sent)}"})
        if call == "getReceivedEdocList":
            items = [
                {"docId": h.doc_id, "serviceType": h.service_type, "from": h.sender}
                for h in self.held
                if h.service_type == params["servicetype"] and h.doc_id not in self.acknowledged
            ]
            return web.json_response(ok | {"data": items})
        if call == "getEdoc":
            (held,) = [h for h in self.held if h.doc_id == params["docid"]]
            return web.json_response(ok | {"data": base64.b64encode(held.data).decode()})
        if call == "updateStatus":
            self.acknowledged[params["docid"]] = params["status"]
            return web.json_response(ok)
        if call == "getAgenciesList":
            return web.json_response(ok | {"data": self.agencies})
        return web.json_response({"status": "FAIL", "ErrorCode": "not_found"})


async def serve_axis() -> AsyncIterator[tuple[AxisDouble, str]]:
    """The double and its endpoint (``…/vxp``)."""
    axis = AxisDouble()
    app = web.Application()
    app.router.add_route("*", "/vxp/{call}", axis.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield axis, str(server.make_url("/vxp"))
    await server.close()


def links_toml(url: str, *, profile: str = "compat") -> str:
    return (
        "[[link]]\n"
        'name = "axis"\n'
        f"url = {json.dumps(url)}\n"
        f"system_id = {json.dumps(SYSTEM_ID)}\n"
        f"secret = {json.dumps(SECRET)}\n"
        'serves = ["*.G*"]\n'
        f"profile = {json.dumps(profile)}\n"
        "poll = 0.2\n"
    )
