"""A province gateway with the national axis upstream (a double that checks every request's
signature): letters for ministries are relayed with sendEdoc, and what the axis holds for the
province is polled, delivered to the local units as received from the link (unsigned national
traffic accepted in the link's compat profile and recorded as unsigned), and acknowledged;
what the gateway refuses is acknowledged as failed and ledgered as rejected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from axisdouble import AxisDouble, links_toml, serve_axis
from gatewaystack import PULL, SENDER, Stack, Webhook, directory_csv, open_stack

from gateway.client import GatewayClient, build_letter, build_status, sign_as_unit, unit
from gateway.config import FederationSettings
from gateway.envelope import build_package, parse_package

MINISTRY = "000.00.00.G22"


@pytest.fixture
async def axis() -> AsyncIterator[tuple[AxisDouble, str]]:
    async for served in serve_axis():
        yield served


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
async def province(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    webhook: tuple[Webhook, str],
    axis: tuple[AxisDouble, str],
) -> AsyncIterator[Stack]:
    links = tmp_path / "links.toml"
    links.write_text(links_toml(axis[1]), encoding="utf-8")
    federation = FederationSettings(links=links)
    hook, hook_url = webhook
    async with open_stack(
        request, tmp_path, hook, directory_csv(hook_url), federation=federation
    ) as stack:
        yield stack


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.1)
    return found


def unsigned_letter(to: str, subject: str) -> bytes:
    return build_package(build_letter(unit(MINISTRY), [unit(to)], subject))


async def inbox(stack: Stack, who: str) -> list[dict[str, Any]]:
    async with GatewayClient(stack.url, stack.tokens[who]) as gw:
        items: list[dict[str, Any]] = (await gw.inbox())["items"]
        return items


async def ledger(stack: Stack, **filters: str) -> list[dict[str, Any]]:
    async with GatewayClient(stack.url, stack.tokens["auditor"]) as gw:
        entries: list[dict[str, Any]] = (await gw.entries(**filters))["entries"]
        return entries


async def test_the_axis_is_polled_and_relayed_to(
    province: Stack, axis: tuple[AxisDouble, str]
) -> None:
    double, _ = axis
    # What the axis holds for the province: an unsigned letter from a ministry to a unit,
    # one for a unit the province does not have, and one that claims to come from one of the
    # province's own units (a link speaks only for the units behind it).
    letter = unsigned_letter(PULL, "Về việc hướng dẫn nghiệp vụ")
    key = f"{MINISTRY}|{parse_package(letter, 'compat').document_id}"
    taken = double.hold("eDoc", letter, MINISTRY)
    stray = double.hold("eDoc", unsigned_letter("000.00.99.H07", "Nhầm địa chỉ"), MINISTRY)
    forged = build_package(build_letter(unit(SENDER), [unit(PULL)], "Giả danh"))
    impostor = double.hold("eDoc", forged, SENDER)

    async def acknowledged() -> bool:
        return {taken, stray, impostor} <= set(double.acknowledged)

    await until(acknowledged)
    assert double.acknowledged == {taken: "done", stray: "fail", impostor: "fail"}
    assert not [i for i in await inbox(province, PULL) if i["document_key"].startswith(SENDER)]
    (item,) = [i for i in await inbox(province, PULL) if i["document_key"] == key]
    assert item["kind"] == "document"
    (submitted,) = await ledger(province, document=key, event="submitted")
    assert submitted["details"]["link"] == "axis"
    assert submitted["details"]["signature_state"] == "absent"  # recorded as unsigned
    rejected = [e for e in await ledger(province, event="rejected") if e["sender"] == MINISTRY]
    assert [e["code"] for e in rejected] == ["unknown_recipient"]

    # A unit's letter to the ministry goes up with sendEdoc, signed as the unit signed it.
    outgoing = sign_as_unit(
        build_letter(unit(SENDER), [unit(MINISTRY)], "Báo cáo Bộ"), province.keys
    )
    async with GatewayClient(province.url, province.tokens[SENDER]) as gw:
        answer = (await gw.submit(outgoing)).answer
    assert [r["code"] for r in answer["recipients"]] == [MINISTRY]
    await until(lambda: asyncio.sleep(0, bool(double.sent)))
    ((params, body),) = double.sent
    assert body == outgoing
    assert (params["from"], json.loads(params["to"]), params["servicetype"]) == (
        SENDER,
        [MINISTRY],
        "eDoc",
    )

    # The ministry's status 01 comes back through the poll and reaches the sender.
    sent_key = f"{SENDER}|{parse_package(outgoing).document_id}"
    arrived = build_package(build_status(unit(MINISTRY), sent_key, "01"))
    double.hold("status", arrived, MINISTRY)

    async def status_waiting() -> list[dict[str, Any]]:
        return [i for i in await inbox(province, SENDER) if i["document_key"] == sent_key]

    (status_item,) = await until(status_waiting)
    assert status_item["kind"] == "status"
    assert double.refused == 0  # every request the gateway made was signed right
