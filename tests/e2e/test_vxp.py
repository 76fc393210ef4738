"""The national-axis façade, driven by an SDK-style client (tests/vxpsdk.py) on the embedded
stack and on RabbitMQ + PostgreSQL: a letter and its statuses go both ways between a façade
system and a native unit, with the same ledger events and deliveries as native traffic; a
wrong secret, a tampered file hash, a stale timestamp, a replay, a revoked secret and an
unsigned packet are refused with the protocol's FAIL reply."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gatewaystack import PULL, SENDER, Stack, Webhook, directory_csv, open_stack
from vxpsdk import SdkClient, file_hash

from gateway.client import (
    GatewayClient,
    build_letter,
    build_status,
    make_attachment,
    sign_as_unit,
    unit,
)
from gateway.config import VxpSettings
from gateway.envelope import Organization, build_package, parse_package
from gateway.service.vxp_secrets import issue_secret, key_file, open_key, revoke_secret

FACADE = PULL  # the façade system: Sở Tài chính, a pull unit
NATIVE = SENDER  # the native unit: Sở Nội vụ, with a bearer token


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
async def facade(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[tuple[Stack, SdkClient]]:
    hook, hook_url = webhook
    vxp = VxpSettings(enabled=True)
    async with open_stack(request, tmp_path, hook, directory_csv(hook_url), vxp=vxp) as stack:
        key = open_key(key_file(stack.runtime.settings))
        issued = await issue_secret(stack.runtime.ledger.engine, key, FACADE)
        async with aiohttp.ClientSession() as session:
            yield stack, SdkClient(f"{stack.url}/vxp", FACADE, issued.secret, session)


def letter(
    stack: Stack, sender: str, to: str, subject: str, *, signed: bool = True, **options: Any
) -> bytes:
    package = build_letter(unit(sender), [Organization(to, f"Đơn vị {to}")], subject, **options)
    return sign_as_unit(package, stack.keys) if signed else build_package(package)


def status(stack: Stack, responder: str, key: str, code: str) -> bytes:
    return sign_as_unit(build_status(unit(responder), key, code), stack.keys)


def native(stack: Stack, who: str) -> GatewayClient:
    return GatewayClient(stack.url, stack.tokens[who])


def key_of(data: bytes) -> str:
    package = parse_package(data)
    return f"{package.sender.organ_id}|{package.document_id}"


async def events(stack: Stack, key: str) -> list[dict[str, Any]]:
    async with native(stack, "auditor") as gw:
        entries: list[dict[str, Any]] = (await gw.entries(document=key))["entries"]
        return entries


def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a ledger event says apart from the ids and digests that differ from one package
    to another: its type, parties, code and the names and kinds of its details."""
    same = ("kind", "signature_state", "recipient_count", "via", "attempt")
    return [
        (
            e["type"],
            e["sender"],
            e["recipient"],
            e["code"],
            sorted(e["details"]),
            tuple(e["details"].get(name) for name in same),
        )
        for e in entries
    ]


async def transports(stack: Stack, key: str) -> dict[str, tuple[str, str | None]]:
    async with native(stack, "operator") as gw:
        view = await gw.document(key)
    return {r["code"]: (r["transport"], r["business"]) for r in view["recipients"]}


async def native_take(stack: Stack, who: str, key: str, kind: str = "document") -> bytes:
    """A native unit fetches its copy of ``key`` and acknowledges it."""
    async with native(stack, who) as gw:
        items = (await gw.inbox())["items"]
        item = next(i for i in items if i["document_key"] == key and i["kind"] == kind)
        fetched = await gw.fetch(item["delivery_id"])
        await gw.ack(item["delivery_id"])
    return fetched.data


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["status"] == "OK" and reply["ErrorCode"] == "0", reply
    return reply


async def test_letters_and_statuses_travel_both_ways_as_natively(
    facade: tuple[Stack, SdkClient],
) -> None:
    stack, sdk = facade

    # Façade -> native: a letter, the same ledger events as one sent natively.
    via_facade = letter(stack, FACADE, NATIVE, "Về việc quyết toán ngân sách")
    sent = ok(await sdk.send_edoc(via_facade, [NATIVE]))
    assert sent["DocId"].startswith("p-")
    async with native(stack, FACADE) as gw:
        natively = letter(stack, FACADE, NATIVE, "Về việc quyết toán ngân sách năm sau")
        assert (await gw.submit(natively)).status == 202
    a, b = key_of(via_facade), key_of(natively)
    assert await native_take(stack, NATIVE, a) == via_facade  # the bytes exactly as signed
    assert await native_take(stack, NATIVE, b) == natively
    assert shape(await events(stack, a)) == shape(await events(stack, b))
    assert [e["type"] for e in await events(stack, a)] == ["submitted", "queued", "delivered"]
    assert await transports(stack, a) == {NATIVE: ("delivered", None)}

    # The native unit's statuses come back to the façade system as status packets.
    async with native(stack, NATIVE) as gw:
        for code in ("01", "03"):
            await gw.submit(status(stack, NATIVE, a, code))
    assert ok(await sdk.call("countReceiveStatus", method="GET"))["data"] == 2
    items = ok(await sdk.received("status"))["data"]
    assert [(i["serviceType"], i["messageType"], i["from"]) for i in items] == [
        ("status", "status", NATIVE)
    ] * 2
    first, second = (i["docId"] for i in items)
    got = base64.b64decode(ok(await sdk.call("getEdoc", {"docId": first}))["data"])
    answer = parse_package(got)
    assert answer.status is not None and answer.status.code == "01"
    assert ok(await sdk.update_status(first, "done"))["state"] == "delivered"
    acked = [
        e["details"]["ack"]
        for e in await events(stack, a)
        if e["type"] == "delivered" and e["details"].get("delivery_id") == first
    ]
    assert acked == ["unsigned"]  # the façade's protocol has no signed statement
    assert ok(await sdk.update_status(second, "processing"))["state"] == "queued"
    assert ok(await sdk.update_status(second, "fail"))["state"] == "retrying"
    assert ok(await sdk.update_status(second, "done"))["state"] == "delivered"
    assert ok(await sdk.call("countReceiveStatus", method="GET"))["data"] == 0
    (row,) = ok(await sdk.call("getSentEdocList", {"docId": sent["DocId"]}))["data"]
    assert row["toCode"] == NATIVE and row["sendStatus"] == "delivered"
    assert row["receiveStatus"] == "03" and row["title"] == "Về việc quyết toán ngân sách"

    # Native -> façade: the system lists, downloads and acknowledges the letter, and answers
    # with status packets; the same events as a copy the unit takes natively.
    async with native(stack, NATIVE) as gw:
        # each built after the one before was answered: a default number is the clock's
        # millisecond, and two letters built in one millisecond would share a DocumentId
        to_facade = letter(stack, NATIVE, FACADE, "Giấy mời họp giao ban")
        await gw.submit(to_facade)
        to_native_client = letter(stack, NATIVE, FACADE, "Giấy mời họp giao ban tháng sau")
        await gw.submit(to_native_client)
    c, d = key_of(to_facade), key_of(to_native_client)
    assert ok(await sdk.call("countReceiveEdoc", method="GET"))["data"] == 2
    listed = ok(await sdk.received("eDoc"))["data"]
    assert [(i["serviceType"], i["from"], i["to"]) for i in listed] == [
        ("eDoc", NATIVE, [FACADE])
    ] * 2
    doc_id = listed[0]["docId"]
    assert await sdk.call("downloadEdoc", {"docId": doc_id}) == to_facade
    ok(await sdk.update_status(doc_id, "done"))
    assert await native_take(stack, FACADE, d) == to_native_client
    assert shape(await events(stack, c)) == shape(await events(stack, d))
    for code in ("01", "03"):
        reply = await sdk.send_edoc(
            status(stack, FACADE, c, code), [NATIVE], servicetype="status", messagetype="status"
        )
        ok(reply)
    assert await transports(stack, c) == {FACADE: ("delivered", "03")}
    back = await native_take(stack, NATIVE, c, kind="status")
    assert parse_package(back).sender.organ_id == FACADE

    # The directory, as the axis lists agencies.
    agencies = ok(await sdk.call("getAgenciesList"))["data"]
    mine = next(u for u in agencies if u["code"] == FACADE)
    assert mine == {
        "code": FACADE, "oldCode": "", "pid": "000.00.00.H07", "name": "Sở Tài chính",
        "deleted": False,
    }  # fmt: skip


async def test_a_scan_is_received_as_it_arrives_and_checked_against_its_hash(
    facade: tuple[Stack, SdkClient],
) -> None:
    """A body over 1 MiB is spooled to disk as it arrives; its hash is worked out from there
    and the same file is what the gateway verifies and keeps."""
    stack, sdk = facade
    scan = make_attachment("cong-van.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8192)
    data = letter(stack, FACADE, NATIVE, "Công văn scan", attachments=[scan])
    assert len(data) > 2 * 1024 * 1024
    ok(await sdk.send_edoc(data, [NATIVE]))
    assert await native_take(stack, NATIVE, key_of(data)) == data
    other = letter(stack, FACADE, NATIVE, "Công văn scan khác", attachments=[scan])
    params = {
        "from": FACADE,
        "to": json.dumps([NATIVE]),
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "hash-file": file_hash(other),
    }
    damaged = other[:-100] + b"0" * 100
    fail(await sdk.send("sendEdoc", sdk.headers(params), body=damaged), "bad_request", "SHA-256")


def fail(reply: dict[str, Any], code: str, says: str) -> None:
    assert reply["status"] == "FAIL" and reply["ErrorCode"] == code, reply
    assert says in reply["ErrorDesc"], reply


async def test_forged_stale_replayed_and_unsigned_requests_are_refused(
    facade: tuple[Stack, SdkClient], data_dir: Path
) -> None:
    stack, sdk = facade
    size = await stack.runtime.ledger.size()

    wrong = SdkClient(sdk.endpoint, sdk.system_id, "not-the-secret", sdk.session)
    fail(await wrong.call("getAgenciesList"), "unauthenticated", "signature does not verify")

    data = letter(stack, FACADE, NATIVE, "Về việc kiểm tra")
    params = {
        "from": FACADE,
        "to": json.dumps([NATIVE]),
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "hash-file": file_hash(data),
    }
    tampered = data.replace("kiểm tra".encode(), "kiểm toán".encode())
    reply = await sdk.send("sendEdoc", sdk.headers(params), body=tampered)
    fail(reply, "bad_request", "SHA-256")
    forged = sdk.headers(params) | {"XroadVnpt-hash-file": file_hash(tampered)}
    reply = await sdk.send("sendEdoc", forged, body=tampered)
    fail(reply, "unauthenticated", "hash-file is not the value signed")

    stale = sdk.headers({}, at=datetime.now(UTC) - timedelta(minutes=10))
    fail(await sdk.send("getAgenciesList", stale), "unauthenticated", "timestamp is 600 s")

    once = sdk.headers({"servicetype": "eDoc", "messagetype": "edoc"})
    ok(await sdk.send("getReceivedEdocList", once))
    fail(await sdk.send("getReceivedEdocList", once), "unauthenticated", "replay")

    elsewhere = letter(stack, FACADE, NATIVE, "Về việc khác")
    fail(await sdk.send_edoc(elsewhere, [PULL]), "bad_request", "the file is for")
    assert await stack.runtime.ledger.size() == size  # none of these reached the exchange

    fail(await sdk.call("registerAgency"), "not_found", "not a call this gateway supports")
    fail(await sdk.update_status("d-0-0", "acceptance"), "bad_request", "status packet 03")
    fail(await sdk.update_status("d-0-0", "done"), "not_found", "no inbox item")
    assert await stack.runtime.ledger.size() == size

    # Unsigned packets, the gateway's own and one the axis's software produced, are refused
    # by the strict profile and ledgered as refused, as they would be natively.
    unsigned = letter(stack, FACADE, NATIVE, "Về việc chưa ký", signed=False)
    fail(await sdk.send_edoc(unsigned, [NATIVE]), "signature_missing", "no XMLDSig signature")
    axis_packet = (data_dir / "interop" / "vxp-2025-874e0f18.edxml").read_bytes()
    fail(await sdk.send_edoc(axis_packet, [NATIVE]), "signature_missing", "")
    async with native(stack, "auditor") as gw:
        refused = (await gw.entries(event="rejected"))["entries"]
    assert [(e["code"], e["sender"]) for e in refused] == [("signature_missing", FACADE)] * 2

    assert await revoke_secret(stack.runtime.ledger.engine, FACADE) == 1
    fail(await sdk.call("getAgenciesList"), "unauthenticated", "revoked")
    async with native(stack, NATIVE) as gw:
        assert (await gw.inbox())["items"] == []  # nothing was delivered to anyone
