"""Two provinces' gateways, each with its own directory, PKI, database and bus, each the
other's upstream link, embedded and on RabbitMQ + PostgreSQL: a letter from a commune of one
province to a department of the other arrives and verifies, its statuses come back, a recall
crosses and is answered, each ledger holds its half with receipts that verify offline, what
was queued while one gateway was stopped is relayed once it is back, once; the remote
directory decides who is addressable, dead and expired copies of a link are redriven, and a
peer speaks only for the units behind its link."""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from vxpsdk import SdkClient, file_hash

from adapters.upstream.pair import Province, ProvinceSpec, prepare_pair, province_directory
from gateway.bus import AmqpBus, ClaimStore, RetryPolicy
from gateway.cli import main
from gateway.client import ApiError, GatewayClient, build_letter, build_status, sign_as_unit, unit
from gateway.db.testing import create_scratch_schema, drop_scratch_schema
from gateway.envelope import parse_package
from gateway.ledger import verify_receipt
from gateway.ledger.keys import load_gateway_public_key
from gateway.service.tokens import Role, issue_token

# A short schedule: a link that is down is tried again within a second; an urgent letter
# expires after 2 s.
POLICY = RetryPolicy.of_seconds(
    [0.3, 0.5], ttl=120, urgent_delays=[0.3], urgent_ttl=2, max_attempts=200
)

UNITS = [
    ("000.00.00", "Ủy ban nhân dân tỉnh", "", 1),
    ("000.00.05", "Sở Nội vụ", "000.00.00", 2),
    ("000.00.20", "Ủy ban nhân dân huyện", "000.00.00", 2),
    ("000.20.01", "Ủy ban nhân dân xã", "000.00.20", 3),
]
COMMUNE_A = "000.20.01.H07"
OFFICE_A = "000.00.05.H07"  # a local recipient beside the remote one
DEPARTMENT_B = "000.00.05.H08"


class Pair:
    def __init__(self, a: Province, b: Province) -> None:
        self.a, self.b = a, b
        self.tokens: dict[str, str] = {}

    async def issue_tokens(self) -> None:
        for province, code in ((self.a, COMMUNE_A), (self.a, OFFICE_A), (self.b, DEPARTMENT_B)):
            engine = province.live.ledger.engine
            self.tokens[code] = (await issue_token(engine, code, Role.UNIT)).token
        for province in (self.a, self.b):
            engine = province.live.ledger.engine
            issued = await issue_token(engine, province.spec.system_id, Role.AUDITOR)
            self.tokens[province.spec.code] = issued.token
            issued = await issue_token(engine, province.spec.system_id, Role.OPERATOR)
            self.tokens[f"{province.spec.code}-operator"] = issued.token

    def client(self, province: Province, who: str) -> GatewayClient:
        return GatewayClient(province.url, self.tokens[who])


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.1)
    return found


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    amqp_url = None
    databases: list[str | None] = [None, None]
    prefix = f"fed{uuid.uuid4().hex[:8]}"
    if request.param != "embedded":
        amqp_url = request.getfixturevalue("amqp_url")
        base = request.getfixturevalue("database_url")
        databases = [await create_scratch_schema(base), await create_scratch_schema(base)]
    specs = [
        ProvinceSpec(code, province_directory(code, UNITS), amqp_url, db, f"{prefix}{code}")
        for code, db in (("H07", databases[0]), ("H08", databases[1]))
    ]
    a, b = await prepare_pair(tmp_path, specs, poll=0.3)
    try:
        for province in (a, b):
            await province.start(POLICY, (0.5, 0.5, 0.5))
        pair = Pair(a, b)
        await pair.issue_tokens()
        yield pair
    finally:
        for province in (a, b):
            await province.stop()
        if amqp_url:
            for province in (a, b):
                cleaner = AmqpBus(
                    amqp_url,
                    namespace=province.spec.namespace,
                    claims=ClaimStore(tmp_path / "claims"),
                    policy=POLICY,
                )
                other = "h08" if province is a else "h07"
                await cleaner.destroy(
                    [*(u[0] + "." + province.spec.code for u in UNITS), f"link:{other}"]
                )
        for db in databases:
            if db:
                await drop_scratch_schema(db)


def letter(
    province: Province, sender: str, to: list[str], subject: str, priority: int = 0
) -> bytes:
    package = build_letter(unit(sender), [unit(code) for code in to], subject, priority=priority)
    return sign_as_unit(package, province.keys)


def status(province: Province, responder: str, key: str, code: str) -> bytes:
    return sign_as_unit(build_status(unit(responder), key, code), province.keys)


async def waiting(pair: Pair, province: Province, who: str, key: str) -> list[dict[str, Any]]:
    async with pair.client(province, who) as gw:
        items: list[dict[str, Any]] = (await gw.inbox())["items"]
    return [i for i in items if i["document_key"] == key]


async def take(pair: Pair, province: Province, who: str, key: str, kind: str) -> dict[str, Any]:
    """Wait for a copy of ``kind`` about ``key`` in ``who``'s inbox, fetch and acknowledge it."""

    async def found() -> list[dict[str, Any]]:
        return [i for i in await waiting(pair, province, who, key) if i["kind"] == kind]

    (item,) = await until(found)
    async with pair.client(province, who) as gw:
        fetched = await gw.fetch(item["delivery_id"])
        await gw.ack(item["delivery_id"])
    return {"item": item, "data": fetched.data, "signature_state": fetched.signature_state}


async def recipient_view(pair: Pair, who: str, key: str, code: str) -> dict[str, Any]:
    async with pair.client(pair.a, who) as gw:
        view = await gw.document(key)
    found: dict[str, Any] = next(r for r in view["recipients"] if r["code"] == code)
    return found


async def test_a_letter_crosses_to_another_province_and_its_answers_come_back(pair: Pair) -> None:
    a, b = pair.a, pair.b
    data = letter(a, COMMUNE_A, [DEPARTMENT_B, OFFICE_A], "Về việc phối hợp liên tỉnh")
    key = f"{COMMUNE_A}|{parse_package(data).document_id}"
    async with pair.client(a, COMMUNE_A) as gw:
        answer = (await gw.submit(data)).answer
    modes = {r["code"]: r["state"] for r in answer["recipients"]}
    assert modes == {DEPARTMENT_B: "accepted", OFFICE_A: "queued"}

    # The local recipient gets it locally, the remote one in the other province, the very
    # bytes the commune signed, verified there against the commune's own CA.
    await take(pair, a, OFFICE_A, key, "document")
    got = await take(pair, b, DEPARTMENT_B, key, "document")
    assert got["data"] == data and got["signature_state"] == "valid"
    assert (await recipient_view(pair, COMMUNE_A, key, DEPARTMENT_B))["transport"] == "delivered"

    # Statuses 01, 03, 06 come back to the commune, as local ones would.
    for code in ("01", "03", "06"):
        async with pair.client(b, DEPARTMENT_B) as gw:
            await gw.submit(status(b, DEPARTMENT_B, key, code))
        got = await take(pair, a, COMMUNE_A, key, "status")
        assert parse_package(got["data"]).status.code == code  # type: ignore[union-attr]
    remote = await recipient_view(pair, COMMUNE_A, key, DEPARTMENT_B)
    assert [s["code"] for s in remote["statuses"]] == ["01", "03", "06"]

    # A recall crosses and is answered.
    second = letter(a, COMMUNE_A, [DEPARTMENT_B], "Về việc điều chỉnh kế hoạch")
    key2 = f"{COMMUNE_A}|{parse_package(second).document_id}"
    async with pair.client(a, COMMUNE_A) as gw:
        await gw.submit(second)
    await take(pair, b, DEPARTMENT_B, key2, "document")
    async with pair.client(a, COMMUNE_A) as gw:
        await gw.submit(status(a, COMMUNE_A, key2, "13"))
    recall = await take(pair, b, DEPARTMENT_B, key2, "status")
    assert parse_package(recall["data"]).status.code == "13"  # type: ignore[union-attr]
    async with pair.client(b, DEPARTMENT_B) as gw:
        await gw.submit(status(b, DEPARTMENT_B, key2, "15"))
    answered = await take(pair, a, COMMUNE_A, key2, "status")
    assert parse_package(answered["data"]).status.code == "15"  # type: ignore[union-attr]
    assert (await recipient_view(pair, COMMUNE_A, key2, DEPARTMENT_B))["recall"] == "15"

    # Each ledger holds its half, with receipts that verify offline against that gateway's
    # own key: the sender's side shows the copy handed to the link and the statuses that came
    # back; the other side shows the letter received from the link and delivered.
    halves = {}
    for province in (a, b):
        async with pair.client(province, province.spec.code) as gw:
            (receipt,) = await gw.receipts(key)
        pinned = load_gateway_public_key(province.keys)
        verified = verify_receipt(json.loads(json.dumps(receipt)), pinned)
        halves[province.spec.code] = [
            (e.event.type.value, e.event.recipient, e.event.details.get("link"))
            for e in verified.entries
        ]
    assert halves["H07"][0] == ("submitted", None, None)
    assert ("delivered", DEPARTMENT_B, "h08") in halves["H07"]  # handed to the link
    assert [s for s in halves["H07"] if s[0] == "status"] == [("status", COMMUNE_A, "h08")] * 3
    assert halves["H08"][0] == ("submitted", None, "h07")
    assert ("delivered", DEPARTMENT_B, None) in halves["H08"]
    assert [s for s in halves["H08"] if s[0] == "status"] == [("status", COMMUNE_A, None)] * 3
    assert [s for s in halves["H08"] if s[0] == "delivered" and s[1] == COMMUNE_A] == [
        ("delivered", COMMUNE_A, "h07")
    ] * 3


async def test_letters_queued_while_the_other_province_is_down_are_relayed_once(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    await b.stop()
    keys = []
    for n in range(4):
        data = letter(a, COMMUNE_A, [DEPARTMENT_B], f"Công văn số {n} trong lúc mất kết nối")
        keys.append(f"{COMMUNE_A}|{parse_package(data).document_id}")
        async with pair.client(a, COMMUNE_A) as gw:
            await gw.submit(data)
    urgent = letter(a, COMMUNE_A, [DEPARTMENT_B], "Hỏa tốc: quá hạn khi mất kết nối", priority=1)
    keys.append(f"{COMMUNE_A}|{parse_package(urgent).document_id}")
    async with pair.client(a, COMMUNE_A) as gw:
        await gw.submit(urgent)

    async def transports() -> list[str]:
        return [(await recipient_view(pair, COMMUNE_A, k, DEPARTMENT_B))["transport"] for k in keys]

    async def retrying_and_expired() -> bool:
        return await transports() == ["retrying"] * 4 + ["expired"]

    await until(retrying_and_expired)
    await b.start(POLICY, (0.5, 0.5, 0.5))
    async with pair.client(a, "H07-operator") as gw:  # the expired one is redriven
        assert await gw.redrive("link:h08") == 1

    async def delivered() -> bool:
        return await transports() == ["delivered"] * 5

    await until(delivered)
    for k in keys:
        await take(pair, b, DEPARTMENT_B, k, "document")
    async with pair.client(b, "H08") as gw:
        submitted = [e for e in (await gw.entries(event="submitted"))["entries"]]
    assert sorted(e["document"] for e in submitted) == sorted(keys)  # each once


async def cli(province: Province, *args: str) -> tuple[int, str]:
    """A ``gateway`` command run where the province's gateway runs (its settings), in a
    thread of its own (it runs its own event loop)."""
    config = province.settings
    env = {
        "GATEWAY_HOME": str(config.home),
        "GATEWAY_DIRECTORY": str(config.directory),
        "GATEWAY_KEYS": str(config.keys),
        "GATEWAY_FEDERATION_LINKS": str(config.federation.links),
        "GATEWAY_DATABASE_URL": config.database_url.reveal() if config.database_url else "",
    }
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


async def test_the_remote_directory_decides_who_is_addressable_and_dead_copies_are_redriven(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    newcomer = "000.00.77.H08"  # served by the link's patterns, not yet in province B

    # Before the link's directory is synchronised its patterns route: B refuses the unit it
    # does not know, and A's copy is dead at once (a refusal, not an outage).
    data = letter(a, COMMUNE_A, [newcomer], "Gửi đơn vị mới thành lập")
    key = f"{COMMUNE_A}|{parse_package(data).document_id}"
    async with pair.client(a, COMMUNE_A) as gw:
        await gw.submit(data)

    async def dead() -> bool:
        view = await recipient_view(pair, COMMUNE_A, key, newcomer)
        return bool(view["transport"] == "dead")

    await until(dead)
    code, out = await cli(a, "links", "--json")
    assert code == 0, out
    (state,) = json.loads(out)
    assert code == 0 and state["stopped"] == 1 and "unknown_recipient" in state["last_failure"]

    # B adds the unit; A's operator redrives the link's dead copies: now it arrives.
    async with pair.client(b, "H08-operator") as gw:
        fields = {"name": "Ban quản lý mới", "parent_code": "000.00.00.H08", "level": "2"}
        await gw.add_unit(newcomer, fields | {"delivery": "pull"})
    async with pair.client(a, "H07-operator") as gw:
        assert await gw.redrive("link:h08") == 1

    async def delivered() -> bool:
        view = await recipient_view(pair, COMMUNE_A, key, newcomer)
        return bool(view["transport"] == "delivered")

    await until(delivered)

    # Synchronised, the link's directory is what is addressable behind it.
    code, out = await cli(a, "units", "sync", "--link", "h08", "--json")
    synced = json.loads(out)
    assert code == 0 and (synced["version"], synced["units"]) == (1, len(UNITS) + 1)
    code, out = await cli(a, "units", "show", DEPARTMENT_B, "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["link"], shown["name"], shown["listed"]) == (
        "h08",
        "Sở Nội vụ",
        True,
    )
    assert (await cli(a, "units", "show", "000.00.88.H08"))[0] == 1
    code, out = await cli(a, "units", "show", COMMUNE_A, "--json")
    assert code == 0 and json.loads(out)["delivery"] == "pull"  # local
    stranger = letter(a, COMMUNE_A, ["000.00.88.H08"], "Gửi đơn vị không có")
    async with pair.client(a, COMMUNE_A) as gw:
        with pytest.raises(ApiError) as refused:
            await gw.submit(stranger)
    assert refused.value.code == "unknown_recipient"
    async with pair.client(a, "H07") as gw:
        events = (await gw.entries(event="operator"))["entries"]
    (sync,) = [e for e in events if e["code"] == "remote_units_sync"]
    assert sync["details"]["link"] == "h08" and sync["details"]["version"] == 1


async def test_a_peer_speaks_only_for_the_units_behind_its_link(pair: Pair) -> None:
    """What province B's gateway may send to A's façade as the peer of A's link h08: letters
    of B's units, for A's units; never one of A's own units' letters, never for a unit the
    file does not name, and only with the secret A issued it."""
    a, b = pair.a, pair.b
    links = tomllib.loads((b.home / "links.toml").read_text(encoding="utf-8"))
    secret = links["link"][0]["secret"]  # what A issued B's gateway
    async with aiohttp.ClientSession() as session:
        peer = SdkClient(f"{a.url}/vxp", b.spec.system_id, secret, session)
        impostor = SdkClient(f"{a.url}/vxp", b.spec.system_id, "not-the-secret", session)

        forged = letter(a, OFFICE_A, [COMMUNE_A], "Thư mạo danh đơn vị của tỉnh A")
        reply = await send_as_peer(peer, forged, OFFICE_A, [COMMUNE_A])
        assert (reply["status"], reply["ErrorCode"]) == ("FAIL", "forbidden")

        genuine = letter(b, DEPARTMENT_B, [COMMUNE_A], "Thư của tỉnh B")
        reply = await send_as_peer(peer, genuine, DEPARTMENT_B, [OFFICE_A])
        assert (reply["status"], reply["ErrorCode"]) == ("FAIL", "bad_request")
        reply = await send_as_peer(impostor, genuine, DEPARTMENT_B, [COMMUNE_A])
        assert (reply["status"], reply["ErrorCode"]) == ("FAIL", "unauthenticated")

        reply = await send_as_peer(peer, genuine, DEPARTMENT_B, [COMMUNE_A])
        assert reply["status"] == "OK"
    key = f"{DEPARTMENT_B}|{parse_package(genuine).document_id}"
    assert (await take(pair, a, COMMUNE_A, key, "document"))["data"] == genuine


async def send_as_peer(
    client: SdkClient, data: bytes, sender: str, to: list[str]
) -> dict[str, Any]:
    params = {
        "from": sender,
        "to": json.dumps(to),
        "servicetype": "eDoc",
        "messagetype": "edoc",
        "hash-file": file_hash(data),
    }
    reply: dict[str, Any] = await client.send("sendEdoc", client.headers(params), body=data)
    return reply
