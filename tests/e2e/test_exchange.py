"""A letter's whole life through a running gateway, on the embedded stack and on RabbitMQ +
PostgreSQL: submission, delivery to a pull, a push and a native-AMQP unit, statuses back to
the sender, a recall, receipts verified offline, idempotency, conflicts, and who may do what."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from gatewaystack import NATIVE, OUTSIDER, PULL, PUSH, SENDER, SUSPENDED, Stack, native_consume
from lxml import etree

from gateway.bench.run import metric_samples
from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    business_change,
    listed_package,
    sign_as_unit,
    unit,
)
from gateway.envelope import Organization, build_tree, names, parse_package
from gateway.ledger import Query, verify_receipt
from gateway.ledger.keys import load_gateway_public_key
from gateway.service import inbox as inboxes
from gateway.trust import load_unit_signer, sign_package


def client(stack: Stack, who: str) -> GatewayClient:
    return GatewayClient(stack.url, stack.tokens[who])


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last: {result!r}")
        await asyncio.sleep(0.1)


def letter(stack: Stack, *to: str, subject: str = "Về việc báo cáo", **options: Any) -> bytes:
    package = build_letter(
        unit(SENDER), [Organization(code, f"Đơn vị {code}") for code in to], subject, **options
    )
    return sign_as_unit(package, stack.keys)


def status(stack: Stack, responder: str, key: str, code: str) -> bytes:
    return sign_as_unit(build_status(unit(responder), key, code), stack.keys)


async def transport(stack: Stack, key: str, recipient: str) -> str | None:
    async with client(stack, "operator") as gw:
        view = await gw.document(key)
    return next(r["transport"] for r in view["recipients"] if r["code"] == recipient)


async def inbox_item(stack: Stack, who: str, key: str, kind: str = "document") -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        async with client(stack, who) as gw:
            page = await gw.inbox()
        return next(
            (i for i in page["items"] if i["document_key"] == key and i["kind"] == kind), None
        )

    item: dict[str, Any] = await eventually(find)
    return item


async def test_a_letter_travels_to_three_units_and_its_statuses_come_back(stack: Stack) -> None:
    data = letter(stack, PULL, PUSH, NATIVE, subject="Báo cáo công tác cải cách hành chính")
    async with client(stack, SENDER) as gw:
        submitted = await gw.submit(data)
    assert submitted.status == 202
    answer = submitted.answer
    key = answer["document_key"]
    assert key == f"{SENDER}|{parse_package(data).document_id}"
    assert [r["code"] for r in answer["recipients"]] == [PULL, PUSH, NATIVE]
    states = {r["code"]: r["state"] for r in answer["recipients"]}
    assert states[PULL] == "queued"  # in its inbox, committed with the package
    # Bus copies are published once the package is committed: the answer does not wait.
    assert {states[PUSH], states[NATIVE]} <= {"accepted", "queued", "delivered"}
    assert answer["signature_state"] == "valid" and answer["ledger_seq"] >= 0

    # The push unit's system receives the exact bytes, with the delivery id to deduplicate.
    await eventually(lambda: asyncio.sleep(0, stack.webhook.received))
    (delivery_id, body), *_ = stack.webhook.received
    assert body == data and delivery_id.startswith("d-")
    assert await eventually(lambda: _is(stack, key, PUSH, "delivered"))

    # The pull unit fetches the bytes exactly as signed, then acknowledges.
    item = await inbox_item(stack, PULL, key)
    assert item["sender"] == SENDER and item["signature_state"] == "valid"
    async with client(stack, PULL) as gw:
        fetched = await gw.fetch(item["delivery_id"])
        assert fetched.data == data and fetched.signature_state == "valid"
        assert await transport(stack, key, PULL) == "queued"
        assert (await gw.ack(item["delivery_id"]))["state"] == "delivered"
        assert (await gw.ack(item["delivery_id"]))["state"] == "delivered"  # harmless twice
    assert await transport(stack, key, PULL) == "delivered"

    # The third unit: its own AMQP consumer on RabbitMQ; its inbox on the embedded bus.
    if stack.amqp_url:
        consumed = await native_consume(stack, NATIVE)
        assert consumed.body == data and consumed.headers["gw-document-key"] == key
        assert await transport(stack, key, NATIVE) == "queued"  # until it says 01
    else:
        item = await inbox_item(stack, NATIVE, key)
        async with client(stack, NATIVE) as gw:
            await gw.ack(item["delivery_id"])

    # Statuses 01 -> 03 -> 06 from the pull unit travel back to the sender.
    async with client(stack, PULL) as gw:
        for code in ("01", "03", "06"):
            sent = await gw.submit(status(stack, PULL, key, code))
            assert sent.status == 202 and sent.answer["kind"] == "status"
            assert [r["code"] for r in sent.answer["recipients"]] == [SENDER]
    async with client(stack, NATIVE) as gw:
        await gw.submit(status(stack, NATIVE, key, "01"))
    assert await transport(stack, key, NATIVE) == "delivered"

    back = await inbox_item(stack, SENDER, key, kind="status")
    assert back["status"] in ("01", "03", "06") and back["sender"] == PULL

    # A recall: 13 from the sender reaches every recipient; the pull unit agrees (15).
    async with client(stack, SENDER) as gw:
        recall = await gw.submit(status(stack, SENDER, key, "13"))
    assert [r["code"] for r in recall.answer["recipients"]] == [PULL, PUSH, NATIVE]
    async with client(stack, PULL) as gw:
        await gw.submit(status(stack, PULL, key, "15"))

    async with client(stack, SENDER) as gw:
        view = await gw.document(key)
    by_code = {r["code"]: r for r in view["recipients"]}
    assert [s["code"] for s in by_code[PULL]["statuses"]] == ["01", "03", "06", "13", "15"]
    assert by_code[PULL]["business"] == "06" and by_code[PULL]["recall"] == "15"
    assert by_code[PUSH]["recall"] == "13" and by_code[PUSH]["transport"] == "delivered"
    assert [s["code"] for s in by_code[NATIVE]["statuses"]] == ["01", "13"]

    # Receipts verify offline with nothing but the gateway's public key (pinned, not the copy
    # inside the receipt).
    async with client(stack, "auditor") as gw:
        receipts = await gw.receipts(key)
    (receipt,) = receipts
    pinned = load_gateway_public_key(stack.keys)
    verified = verify_receipt(json.loads(json.dumps(receipt)), pinned)
    types = [e.event.type.value for e in verified.entries]
    assert types[0] == "submitted" and "delivered" in types and "status" in types


async def _is(stack: Stack, key: str, recipient: str, state: str) -> bool:
    return await transport(stack, key, recipient) == state


async def test_same_package_again_is_the_same_answer_and_other_content_conflicts(
    stack: Stack,
) -> None:
    data = letter(stack, PULL, number="77")
    async with client(stack, SENDER) as gw:
        first = await gw.submit(data)
        again = await gw.submit(data)
        assert (first.status, again.status) == (202, 200)
        assert again.answer["package_id"] == first.answer["package_id"]
        assert again.answer["ledger_seq"] == first.answer["ledger_seq"]
        other = letter(stack, PULL, number="77", subject="Nội dung khác")
        with pytest.raises(ApiError) as caught:
            await gw.submit(other)
    assert (caught.value.status, caught.value.code) == (409, "duplicate_conflict")


async def test_the_same_letter_sent_and_acknowledged_at_once_counts_once(stack: Stack) -> None:
    # Requests that reach the writer together share its batch: the twins must still be one.
    data = letter(stack, PULL, number="78")
    async with client(stack, SENDER) as gw:
        answers = await asyncio.gather(*(gw.submit(data) for _ in range(6)))
    assert sorted(a.status for a in answers) == [200] * 5 + [202]
    assert len({a.answer["package_id"] for a in answers}) == 1
    key = answers[0].document_key
    item = await inbox_item(stack, PULL, key)
    async with client(stack, PULL) as gw:
        states = await asyncio.gather(*(gw.ack(item["delivery_id"]) for _ in range(6)))
    assert {s["state"] for s in states} == {"delivered"}
    entries = (await stack.runtime.ledger.query(Query(document=key))).entries
    assert [e.event.type.value for e in entries] == ["submitted", "queued", "delivered"]


async def test_a_unit_acknowledges_several_copies_in_one_request(stack: Stack) -> None:
    async with client(stack, SENDER) as gw:
        keys = [
            (await gw.submit(letter(stack, PULL, number=f"6{i}"))).document_key for i in range(3)
        ]
    ids = [(await inbox_item(stack, PULL, key))["delivery_id"] for key in keys]
    async with client(stack, PULL) as gw:
        answers = await gw.ack_all(
            [
                ids[0],
                ids[1],
                {"delivery_id": ids[1], "result": "done"},  # twice in one request: harmless
                {"delivery_id": ids[2], "result": "fail", "reason": "hộp thư đầy"},
                "d-nope",
            ]
        )
    assert [a["delivery_id"] for a in answers] == [*ids[:2], ids[1], ids[2], "d-nope"]
    assert [a.get("state") for a in answers] == [
        "delivered",
        "delivered",
        "delivered",
        "retrying",
        None,
    ]
    assert answers[4]["problem"]["code"] == "not_found"  # refused alone; the others stand
    events = [
        [e.event.type.value for e in (await stack.runtime.ledger.query(Query(document=k))).entries]
        for k in keys
    ]
    assert events == [
        ["submitted", "queued", "delivered"],
        ["submitted", "queued", "delivered"],
        ["submitted", "queued", "retrying"],
    ]
    async with client(stack, PULL) as gw:  # the failed copy is offered again
        assert [i["delivery_id"] for i in (await gw.inbox())["items"]] == [ids[2]]
    async with client(stack, OUTSIDER) as gw:  # another unit's copy is as unknown as none
        (answer,) = await gw.ack_all([ids[2]])
        assert answer["problem"]["code"] == "not_found"
    for who, acks, refused in [
        ("operator", [ids[2]], 403),  # only the recipient unit acknowledges
        (PULL, [], 400),
        (PULL, [ids[2]] * 501, 400),
        (PULL, [{"result": "done"}], 400),
        (PULL, [{"delivery_id": ids[2], "result": "maybe"}], 400),
    ]:
        async with client(stack, who) as gw:
            with pytest.raises(ApiError) as caught:
                await gw.ack_all(acks)
        assert caught.value.status == refused, (who, acks[:1])
    async with client(stack, PULL) as gw:  # nothing refused as a whole was acknowledged
        assert [i["delivery_id"] for i in (await gw.inbox())["items"]] == [ids[2]]


async def test_a_listing_carries_the_packages_that_fit_and_leaves_the_rest_to_fetch(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = [
        letter(stack, PULL, number=f"7{i}", subject="Về việc báo cáo" + " năm nay" * 40 * i)
        for i in range(3)
    ]  # each larger than the one before
    async with client(stack, SENDER) as gw:
        keys = [(await gw.submit(data)).document_key for data in sent]
    ids = [(await inbox_item(stack, PULL, key))["delivery_id"] for key in keys]
    async with client(stack, PULL) as gw:
        plain = (await gw.inbox())["items"]
        page = (await gw.inbox(packages=True))["items"]
        fetched = [await gw.fetch(i) for i in ids]
    assert all("package" not in item for item in plain)  # only when asked
    assert [item["delivery_id"] for item in page] == ids
    assert [listed_package(item) for item in page] == fetched  # what a fetch gives
    assert [f.data for f in fetched] == sent  # the bytes exactly as signed
    # a package over the limit is left to fetch, and so are those past the page's share
    monkeypatch.setattr(inboxes, "LISTED_PACKAGE", len(sent[1]))
    monkeypatch.setattr(inboxes, "LISTED_PAGE", len(sent[0]) + len(sent[1]) + len(sent[2]) - 1)
    async with client(stack, PULL) as gw:
        page = (await gw.inbox(packages=True))["items"]
    assert [item["package"] is None for item in page] == [False, False, True]
    monkeypatch.setattr(inboxes, "LISTED_PACKAGE", len(sent[2]))
    monkeypatch.setattr(inboxes, "LISTED_PAGE", len(sent[0]) + len(sent[1]) - 1)
    async with client(stack, PULL) as gw:  # the page's share: the second would pass it
        page = (await gw.inbox(packages=True))["items"]
    assert [item["package"] is None for item in page] == [False, True, True]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{stack.url}/v1/inbox?include=body",
            headers={"Authorization": f"Bearer {stack.tokens[PULL]}"},
        ) as r,
    ):
        assert r.status == 400 and (await r.json())["code"] == "bad_request"


async def test_unknown_or_suspended_recipients_queue_nothing(stack: Stack) -> None:
    async with client(stack, SENDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.submit(letter(stack, PULL, "000.00.99.H07", number="88"))
        assert (caught.value.status, caught.value.code) == (422, "unknown_recipient")
        assert caught.value.problem["recipients"] == ["000.00.99.H07"]
        with pytest.raises(ApiError) as caught:
            await gw.submit(letter(stack, PULL, SUSPENDED, number="89"))
        assert caught.value.code == "recipient_suspended"
    async with client(stack, PULL) as gw:
        assert (await gw.inbox())["items"] == []


async def test_workflow_violations_are_refused_with_their_codes(stack: Stack) -> None:
    async with client(stack, SENDER) as gw:
        key = (await gw.submit(letter(stack, PULL, number="90"))).document_key
    cases = [
        (PULL, "03", "status_out_of_order"),  # accepted before arrived
        (OUTSIDER, "01", "status_not_recipient"),
        (PULL, "13", "recall_not_sender"),
        (PULL, "15", "status_out_of_order"),  # no recall to answer
    ]
    for who, code, expected in cases:
        async with client(stack, who) as gw:
            with pytest.raises(ApiError) as caught:
                await gw.submit(status(stack, who, key, code))
        assert (caught.value.status, caught.value.code) == (422, expected), (who, code)
    revoke = letter(
        stack, PULL, number="91", business=business_change("revoke", f"{SENDER},2026/01/02,1/XX")
    )
    async with client(stack, SENDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.submit(revoke)
    assert caught.value.code == "business_target_unknown"


async def test_tokens_of_other_units_and_auditors_are_refused(stack: Stack) -> None:
    data = letter(stack, PULL, number="92")
    async with client(stack, PULL) as gw:  # a token of another unit than the package's
        with pytest.raises(ApiError) as caught:
            await gw.submit(data)
        assert caught.value.status == 403
    async with client(stack, SENDER) as gw:
        key = (await gw.submit(data)).document_key
    item = await inbox_item(stack, PULL, key)
    # Another unit's copy, document or receipt is as unknown to a unit as a missing one.
    unit_scoped: list[tuple[Callable[[GatewayClient], Awaitable[Any]], int]] = [
        (lambda gw: gw.inbox(unit=PULL), 403),
        (lambda gw: gw.fetch(item["delivery_id"]), 404),
        (lambda gw: gw.ack(item["delivery_id"]), 404),
        (lambda gw: gw.document(key), 404),
        (lambda gw: gw.receipts(key), 404),
    ]
    async with client(stack, OUTSIDER) as gw:
        for call, refused in unit_scoped:
            with pytest.raises(ApiError) as caught:
                await call(gw)
            assert caught.value.status == refused, call
    async with client(stack, "operator") as gw:  # operators relay in compat only
        with pytest.raises(ApiError) as caught:
            await gw.submit(data)
        assert caught.value.status == 403
    async with client(stack, "auditor") as gw:
        assert (await gw.document(key))["document_key"] == key  # reads everything
        for write in (
            lambda: gw.submit(data),
            lambda: gw.ack(item["delivery_id"]),
            lambda: gw.redrive(PUSH),
        ):
            with pytest.raises(ApiError) as caught:
                await write()
            assert caught.value.status == 403
    async with GatewayClient(stack.url, "gw_nope_nope") as gw:
        with pytest.raises(ApiError) as caught:
            await gw.inbox()
        assert caught.value.status == 401


async def test_a_push_endpoint_down_then_up_gets_the_letter(stack: Stack) -> None:
    stack.webhook.status = 503
    async with client(stack, SENDER) as gw:
        key = (await gw.submit(letter(stack, PUSH, number="93"))).document_key
    await eventually(lambda: _is(stack, key, PUSH, "retrying"))
    assert stack.webhook.refused >= 1
    stack.webhook.status = 200
    assert await eventually(lambda: _is(stack, key, PUSH, "delivered"))
    async with client(stack, "auditor") as gw:
        page = await gw.entries(document=key)
    types = [e["type"] for e in page["entries"]]
    assert types[:2] == ["submitted", "queued"] and "retrying" in types
    assert types[-1] == "delivered"


async def test_a_push_endpoint_down_past_the_ttl_expires_and_the_sender_sees_it(
    stack: Stack,
) -> None:
    stack.webhook.status = 503
    async with client(stack, SENDER) as gw:  # urgent: 3 s to live in these tests
        key = (await gw.submit(letter(stack, PUSH, number="94", priority=1))).document_key
    assert await eventually(lambda: _is(stack, key, PUSH, "expired"))
    async with client(stack, SENDER) as gw:
        view = await gw.document(key)
    (push,) = view["recipients"]
    assert push["transport"] == "expired" and push["reason"]
    # An operator redrives it once the endpoint is back.
    stack.webhook.status = 200
    async with client(stack, "operator") as gw:
        assert await gw.redrive(PUSH) >= 1
    try:
        assert await eventually(lambda: _is(stack, key, PUSH, "delivered"))
    except AssertionError:
        async with client(stack, "auditor") as gw:
            page = await gw.entries(document=key)
        print("ledger entries of the document:", json.dumps(page, indent=1))
        raise


async def test_every_route_is_in_the_openapi_document_and_back(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        spec = await get_json(session, stack.url + "/v1/openapi.json")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in stack_routes(stack)
        if route.method != "HEAD"
    }
    described = {
        (method, path) for path, operations in spec["paths"].items() for method in operations
    }
    assert served == described


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200
        return await response.json()


def stack_routes(stack: Stack) -> list[Any]:
    from gateway.api.app import build_app

    return [r for r in build_app(stack.runtime).router.routes() if r.resource is not None]


async def test_health_readiness_and_metrics(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        health = await get_json(session, stack.url + "/healthz")
        ready = await get_json(session, stack.url + "/readyz")
        before = await metric_values(stack.url)
        async with client(stack, SENDER) as gw:
            await asyncio.gather(
                *(gw.submit(letter(stack, PULL, number=f"7{n}")) for n in range(4))
            )
        after = await metric_values(stack.url)
    assert health == {"status": "ok"}
    assert ready == {"ready": True, "database": "ok", "bus": "ok"}
    assert after["gateway_http_requests_total"] > before["gateway_http_requests_total"]
    # The four letters' database work was done in committed write transactions, each timed.
    jobs = after["gateway_writer_jobs_total"] - before["gateway_writer_jobs_total"]
    batches = after["gateway_writer_batches_total"] - before["gateway_writer_batches_total"]
    assert jobs >= 4 and 1 <= batches <= jobs
    for timed in ("gateway_writer_lock_wait_seconds", "gateway_writer_lock_held_seconds"):
        assert after[f"{timed}_count"] - before[f"{timed}_count"] == batches
        assert after[f"{timed}_sum"] > before[f"{timed}_sum"]


async def metric_values(url: str) -> dict[str, float]:
    """The /metrics samples without labels by name, those with labels summed."""
    values: dict[str, float] = {}
    for sample, value in (await metric_samples(url)).items():
        name = sample.split("{")[0]
        values[name] = values.get(name, 0.0) + value
    return values


async def test_a_revoked_token_is_refused_and_auditors_get_csv(stack: Stack) -> None:
    from gateway.service.tokens import revoke_tokens

    async with client(stack, SENDER) as gw:
        key = (await gw.submit(letter(stack, PULL, number="95"))).document_key
    token_id = stack.tokens[OUTSIDER].split("_")[1]
    assert await revoke_tokens(stack.runtime.ledger.engine, token_id=token_id) == 1
    stack.runtime.tokens._known.clear()  # as after the checker's one-minute memory
    async with client(stack, OUTSIDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.inbox()
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {stack.tokens['auditor']}"}
        params = {"document": key, "format": "csv"}
        async with session.get(
            stack.url + "/v1/ledger/entries", params=params, headers=headers
        ) as response:
            assert response.status == 200 and response.content_type == "text/csv"
            lines = (await response.text()).splitlines()
    assert lines[0].startswith("seq,time,type,document,sender,recipient,code")
    assert [line.split(",")[2] for line in lines[1:3]] == ["submitted", "queued"]


def deviating_letter(stack: Stack, change: Callable[[etree._Element], None], number: str) -> bytes:
    """A letter from SENDER to PULL whose header ``change`` alters before SENDER signs it."""
    root = build_tree(
        build_letter(unit(SENDER), [Organization(PULL, f"Đơn vị {PULL}")], "x", number=number)
    )
    change(root.find(f".//{names.MESSAGE_HEADER}"))
    key, cert = load_unit_signer(stack.keys, SENDER)
    return sign_package(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), key, cert)


async def test_an_operator_relays_a_deviating_header_in_compat_and_it_is_delivered(
    stack: Stack,
) -> None:
    def deviate(message: etree._Element) -> None:
        subject = message.find(names.tag("Subject"))
        to = message.find(names.tag("To"))
        assert subject is not None and to is not None
        message.remove(subject)  # missing
        to.addnext(copy.deepcopy(to))  # the same recipient twice
        etree.SubElement(message, names.tag("Urgency")).text = "high"  # unknown

    data = deviating_letter(stack, deviate, "96")
    async with client(stack, SENDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.submit(data)
        assert (caught.value.status, caught.value.code) == (422, "schema_invalid")
    async with client(stack, "operator") as gw:
        answer = (await gw.submit(data, profile="compat")).answer
    assert [r["code"] for r in answer["recipients"]] == [PULL]  # routed once
    item = await inbox_item(stack, PULL, answer["document_key"])
    assert item["subject"] is None

    def no_document_id(message: etree._Element) -> None:
        document_id = message.find(names.tag("DocumentId"))
        assert document_id is not None
        message.remove(document_id)

    async with client(stack, "operator") as gw:
        with pytest.raises(ApiError) as caught:
            await gw.submit(deviating_letter(stack, no_document_id, "97"), profile="compat")
        assert (caught.value.status, caught.value.code) == (422, "document_id_missing")
