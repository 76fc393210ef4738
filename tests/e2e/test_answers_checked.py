"""The check of every answer against the OpenAPI document is really applied: the answers a test
receives (through GatewayClient, a plain aiohttp session or the CLI in a thread) are recorded
and conform, and an answer that does not conform is reported with its route and status."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from apicheck import ApiDocument, Recorder
from click.testing import CliRunner
from gatewaystack import PULL, SENDER, Stack

from gateway.cli import main
from gateway.client import ApiError, GatewayClient


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
async def test_every_answer_a_test_receives_is_recorded_and_conforms(
    stack: Stack, api_responses: Recorder, api_document: ApiDocument
) -> None:
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        await gw.inbox()
        with pytest.raises(ApiError):
            await gw.fetch("d-nothing-0")
    operator = {"Authorization": f"Bearer {stack.tokens['operator']}"}
    async with aiohttp.ClientSession(headers=operator) as session:
        for method, path in [
            ("GET", "/v1/units"),
            ("GET", f"/v1/units/{PULL}"),
            ("GET", "/v1/units/999.99.99.H99"),
            ("GET", "/v1/no-such-route"),
            ("DELETE", "/v1/inbox"),
            ("GET", "/readyz"),
            ("HEAD", "/healthz"),
        ]:
            async with session.request(method, stack.url + path) as response:
                await response.read()
    login = ["--url", stack.url, "--token", stack.tokens[PULL]]
    listed = await asyncio.to_thread(
        CliRunner().invoke, main, ["inbox", "list", *login, "--json"], catch_exceptions=False
    )
    assert listed.exit_code == 0, listed.output

    seen = {(a.method, api_document.template(a.path), a.status) for a in api_responses.answers}
    assert seen == {
        ("GET", "/v1/inbox", 200),
        ("GET", "/v1/inbox/{delivery_id}", 404),
        ("GET", "/v1/units", 200),
        ("GET", "/v1/units/{code}", 200),
        ("GET", "/v1/units/{code}", 404),
        ("GET", None, 404),
        ("DELETE", "/v1/inbox", 405),
        ("GET", "/readyz", 200),
        ("HEAD", "/healthz", 200),
    }
    assert api_responses.failures(api_document) == []


class Impostor:
    """A server that answers like a gateway, but not as its document says."""

    @staticmethod
    async def inbox(request: web.Request) -> web.Response:
        item = {"delivery_id": "d-1", "attempt": "first"}
        return web.json_response({"items": [item], "next": 5}, headers={"X-Request-Id": "r"})

    @staticmethod
    async def unit(request: web.Request) -> web.Response:
        return web.Response(text="<p>a unit</p>", content_type="text/html")

    @staticmethod
    async def receipts(request: web.Request) -> web.Response:
        return web.json_response({"receipts": []}, status=201, headers={"X-Request-Id": "r"})


async def test_an_answer_that_does_not_conform_is_reported(
    api_responses: Recorder, api_document: ApiDocument
) -> None:
    app = web.Application()
    app.router.add_get("/v1/inbox", Impostor.inbox)
    app.router.add_get("/v1/units/{code}", Impostor.unit)
    app.router.add_get("/v1/ledger/receipts", Impostor.receipts)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        api_responses.watch(url)
        async with GatewayClient(url, "gw_x_y") as gw:
            page = await gw.inbox()  # the client still reads what the recorder read
            assert page["next"] == 5
        async with aiohttp.ClientSession() as session:
            for path in ("/v1/units/000.00.06.H07", "/v1/ledger/receipts?document=k"):
                async with session.get(url + path) as response:
                    await response.read()
    finally:
        await server.close()

    failures = api_responses.failures(api_document)
    api_responses.answers.clear()  # what this test is about: the impostor is not the gateway
    assert sorted(failures) == sorted(
        [
            "GET /v1/inbox -> 200: items/0: 'package_id' is a required property",
            "GET /v1/inbox -> 200: items/0: 'kind' is a required property",
            "GET /v1/inbox -> 200: items/0: 'document_key' is a required property",
            "GET /v1/inbox -> 200: items/0: 'sender' is a required property",
            "GET /v1/inbox -> 200: items/0: 'status' is a required property",
            "GET /v1/inbox -> 200: items/0: 'subject' is a required property",
            "GET /v1/inbox -> 200: items/0: 'size' is a required property",
            "GET /v1/inbox -> 200: items/0: 'signature_state' is a required property",
            "GET /v1/inbox -> 200: items/0: 'queued_at' is a required property",
            "GET /v1/inbox -> 200: items/0/attempt: 'first' is not of type 'integer'",
            "GET /v1/inbox -> 200: next: 5 is not of type 'string', 'null'",
            "GET /v1/units/{code} (/v1/units/000.00.06.H07) -> 200: header X-Request-Id is missing",
            "GET /v1/units/{code} (/v1/units/000.00.06.H07) -> 200: content type 'text/html' "
            "is not one of application/json",
            "GET /v1/ledger/receipts -> 201: status 201 is not one of 200, 400, 401, 404, "
            "429, default",
        ]
    )
