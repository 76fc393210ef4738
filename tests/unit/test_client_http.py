"""GatewayClient and the client commands against a scripted HTTP server: what goes on the wire
(token, body, encoded keys, query), and how problems and dead gateways come back."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from scripted import Scripted

from gateway.cli import main
from gateway.client import ApiError, GatewayClient, GatewayUnreachable

KEY = "000.00.05.H07|000.00.05.H07,2026/11/26,125/SNV-VP"


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    s.start()
    yield s
    s.stop()


def problem(status: int, code: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": f"urn:gateway:error:{code}", "status": status, "code": code}
    body.update(detail=detail, **extra)
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/problem+json"
    )


def call(url: str, method: str, *args: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        async with GatewayClient(url, "t0ken") as gw:
            return await getattr(gw, method)(*args, **kwargs)

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_submit_posts_the_bytes_with_the_bearer_token(server: Scripted) -> None:
    answer = {"document_key": KEY, "recipients": [], "ledger_seq": 4}
    server.answers["POST", "submit"] = lambda: web.json_response(answer, status=202)
    submitted = call(server.url, "submit", b"<edXML/>")
    assert (submitted.status, submitted.document_key, submitted.replayed) == (202, KEY, False)
    seen = server.seen[0]
    assert seen["body"] == b"<edXML/>"
    assert seen["headers"]["Authorization"] == "Bearer t0ken"
    assert seen["headers"]["Content-Type"] == "application/xml"
    assert seen["query"] == {}


def test_submit_of_the_same_package_again_is_replayed(server: Scripted) -> None:
    server.answers["POST", "submit"] = lambda: web.json_response({"document_key": KEY}, status=200)
    assert call(server.url, "submit", b"<edXML/>", profile="compat").replayed
    assert server.seen[0]["query"] == {"profile": "compat"}


def test_document_key_travels_encoded_in_one_path_segment(server: Scripted) -> None:
    server.answers["GET", "document"] = lambda: web.json_response({"document_key": KEY})
    assert call(server.url, "document", KEY) == {"document_key": KEY}
    seen = server.seen[0]
    assert seen["match"] == {"key": KEY}
    assert seen["raw_path"].startswith("/v1/documents/000.00.05.H07%7C000.00.05.H07")
    assert seen["raw_path"].count("/") == 3  # the key's own slashes travel as %2F


def test_receipts_ask_for_the_document_and_recipient(server: Scripted) -> None:
    server.answers["GET", "receipts"] = lambda: web.json_response({"receipts": [{"format": "x"}]})
    assert call(server.url, "receipts", KEY, "000.00.06.H07") == [{"format": "x"}]
    assert server.seen[0]["query"] == {"document": KEY, "recipient": "000.00.06.H07"}


def test_fetch_returns_the_exact_bytes_and_the_gateway_headers(server: Scripted) -> None:
    data = b"<?xml version='1.0'?>\n<edXML>\xc3\xa1 </edXML>\r\n"
    server.answers["GET", "fetch"] = lambda: web.Response(
        body=data,
        content_type="application/xml",
        headers={
            "X-Gateway-Delivery-Id": "d-1",
            "X-Gateway-Document-Key": KEY,
            "X-Gateway-Signature-State": "valid",
        },
    )
    fetched = call(server.url, "fetch", "d-1")
    assert (fetched.data, fetched.delivery_id) == (data, "d-1")
    assert (fetched.document_key, fetched.signature_state) == (KEY, "valid")


def test_ack_sends_done_or_fail_with_reason(server: Scripted) -> None:
    server.answers["POST", "ack"] = lambda: web.json_response({"delivery_id": "d-1", "state": "x"})
    call(server.url, "ack", "d-1")
    call(server.url, "ack", "d-1", fail="disk full")
    assert [json.loads(s["body"]) for s in server.seen] == [
        {"result": "done"},
        {"result": "fail", "reason": "disk full"},
    ]


def test_inbox_sends_only_the_parameters_given(server: Scripted) -> None:
    server.answers["GET", "inbox"] = lambda: web.json_response({"items": [], "next": None})
    call(server.url, "inbox")
    call(server.url, "inbox", unit="000.00.06.H07", limit=5, after="c1")
    assert [s["query"] for s in server.seen] == [
        {},
        {"unit": "000.00.06.H07", "limit": "5", "after": "c1"},
    ]


def test_a_problem_answer_raises_api_error_with_its_code(server: Scripted) -> None:
    server.answers["POST", "submit"] = lambda: problem(
        422, "unknown_recipient", "000.00.99.H07 is not in the directory", recipients=["x"]
    )
    with pytest.raises(ApiError) as caught:
        call(server.url, "submit", b"<edXML/>")
    e = caught.value
    assert (e.status, e.code, e.detail) == (422, "unknown_recipient", e.problem["detail"])
    assert e.problem["recipients"] == ["x"]


def test_a_non_problem_error_is_named_by_its_reason(server: Scripted) -> None:
    server.answers["GET", "document"] = lambda: web.Response(
        status=502, text="upstream down\n<html>", content_type="text/html"
    )
    with pytest.raises(ApiError) as caught:
        call(server.url, "document", KEY)
    assert (caught.value.status, caught.value.code) == (502, "bad_gateway")
    assert caught.value.detail == "upstream down"


def test_a_dead_gateway_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GatewayUnreachable, match="cannot reach the gateway at http://127"):
        call(url, "inbox")


def test_the_token_is_hidden_in_reprs() -> None:
    assert "t0ken" not in repr(vars(GatewayClient("http://x", "t0ken")))


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_prints_a_problem_as_error_line_and_exits_1(server: Scripted) -> None:
    server.answers["POST", "ack"] = lambda: problem(403, "forbidden", "not your delivery")
    result = run("inbox", "ack", "d-9", "--url", server.url, "--token", "t")
    assert result.exit_code == 1
    assert result.stderr.strip() == "ERROR 403 forbidden: not your delivery"


def test_cli_reads_url_and_token_from_the_environment(
    server: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.answers["GET", "inbox"] = lambda: web.json_response(
        {"items": [{"delivery_id": "d-1", "kind": "status", "status": "03"}], "next": None}
    )
    monkeypatch.setenv("GATEWAY_URL", server.url)
    monkeypatch.setenv("GATEWAY_TOKEN", "from-env")
    result = run("inbox", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("d-1  status 03")
    assert server.seen[0]["headers"]["Authorization"] == "Bearer from-env"


def test_cli_exits_2_when_the_gateway_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    result = run("status", "show", KEY, "--url", url, "--token", "t")
    assert result.exit_code == 2
    assert "error: cannot reach the gateway at " + url in result.stderr


def test_cli_without_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    result = run("inbox", "list", "--url", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert "--token" in result.stderr
