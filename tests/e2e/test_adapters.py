"""The adapter contract, for every registered adapter against a running gateway: what the
agency system puts out is submitted (letters and status packets), what the gateway holds for
its unit reaches the system once and is acknowledged, a crash between handing over and
acknowledging gives the system nothing twice, a gateway asking it to wait while it receives
leaves the rest for the next pass, and refusals come back with their codes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from gatewaystack import PULL, SENDER, Stack

from adapters import AgencyAdapter, Connector, adapter_class, registered
from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    sign_as_unit,
    unit,
)
from gateway.envelope import Organization, build_package

AGENCY_UNIT = PULL  # the unit whose existing system the adapter connects (a pull unit)


class Agency(Protocol):
    """The agency system behind an adapter, as a test drives it."""

    def settings(self, unit: str, keys: Path) -> dict[str, Any]: ...

    def put(self, name: str, data: bytes) -> None: ...

    def received(self) -> list[bytes]: ...

    def outcome(self, name: str) -> tuple[str, str | None]:
        """("sent", None), ("rejected", code) or ("waiting", None)."""
        ...


class FolderAgency:
    def __init__(self, root: Path) -> None:
        self.inbox, self.outbox = root / "in", root / "out"

    def settings(self, unit: str, keys: Path) -> dict[str, Any]:
        return {"unit": unit, "in": self.inbox, "out": self.outbox, "keys": keys}

    def put(self, name: str, data: bytes) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        (self.inbox / f"{name}.edxml").write_bytes(data)

    def received(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.outbox.glob("*.edxml"))]

    def outcome(self, name: str) -> tuple[str, str | None]:
        if (self.inbox / "sent" / f"{name}.edxml").exists():
            return "sent", None
        report = self.inbox / "rejected" / f"{name}.edxml.error.json"
        if report.exists():
            return "rejected", str(json.loads(report.read_text())["code"])
        return "waiting", None


# Every registered adapter needs its agency here, or the contract does not cover it.
AGENCIES: dict[str, Callable[[Path], Agency]] = {"folder": FolderAgency}


def test_every_registered_adapter_has_its_agency_in_the_contract() -> None:
    assert set(registered()) == set(AGENCIES)


@pytest.fixture(params=sorted(AGENCIES))
def agency(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Agency]:
    return request.param, AGENCIES[request.param](tmp_path / "agency")


def connector(embedded: Stack, name: str, agency: Agency) -> tuple[AgencyAdapter, GatewayClient]:
    adapter = adapter_class(name).from_settings(agency.settings(AGENCY_UNIT, embedded.keys))
    return adapter, GatewayClient(embedded.url, embedded.tokens[AGENCY_UNIT])


def letter_from_agency(number: str, to: str = SENDER) -> bytes:
    """An unsigned letter as an agency system writes it (the adapter signs it)."""
    return build_package(
        build_letter(
            unit(AGENCY_UNIT), [Organization(to, f"Đơn vị {to}")], "Về việc", number=number
        )
    )


async def letter_to_agency(embedded: Stack, number: str) -> str:
    package = build_letter(unit(SENDER), [unit(AGENCY_UNIT)], "Giấy mời", number=number)
    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        return (await gw.submit(sign_as_unit(package, embedded.keys))).document_key


async def test_letters_and_statuses_go_both_ways(
    embedded: Stack, agency: tuple[str, Agency]
) -> None:
    name, system = agency
    adapter, client = connector(embedded, name, system)
    incoming = await letter_to_agency(embedded, "41")
    system.put("outgoing", letter_from_agency("42"))
    async with client:
        done = await Connector(adapter, client).run_once()
        assert (done.sent, done.delivered, done.refused) == (1, 1, 0)
        assert system.outcome("outgoing") == ("sent", None)
        (received,) = system.received()
        assert f"<edXML:DocumentId>{incoming.split('|')[1]}".encode() in received.replace(b" ", b"")
        assert (await client.inbox())["items"] == []  # acknowledged
        # the agency answers the letter it received with a status packet, as a file
        system.put("status", build_package(build_status(unit(AGENCY_UNIT), incoming, "01")))
        assert (await Connector(adapter, client).run_once()).sent == 1
        view = await client.document(incoming)
    (recipient,) = view["recipients"]
    assert (recipient["transport"], [s["code"] for s in recipient["statuses"]]) == (
        "delivered",
        ["01"],
    )
    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        items = (await gw.inbox())["items"]
    assert {i["kind"] for i in items} == {"document", "status"}  # the letter and the status


async def test_a_crash_before_the_acknowledgement_hands_nothing_over_twice(
    embedded: Stack, agency: tuple[str, Agency]
) -> None:
    name, system = agency
    adapter, client = connector(embedded, name, system)
    await letter_to_agency(embedded, "51")
    async with client:
        (item,) = (await client.inbox())["items"]
        adapter.deliver(await client.fetch(item["delivery_id"]))  # ...and the process dies
        assert len(system.received()) == 1
        restarted, _ = connector(embedded, name, system)
        assert (await Connector(restarted, client).run_once()).delivered == 1  # acknowledged
        assert (await client.inbox())["items"] == []
    assert len(system.received()) == 1


async def test_a_copy_reaches_the_system_as_it_arrives_not_at_the_next_pass(
    embedded: Stack, agency: tuple[str, Agency]
) -> None:
    name, system = agency
    adapter, client = connector(embedded, name, system)
    stop = asyncio.Event()
    async with client:
        running = asyncio.create_task(Connector(adapter, client).run(stop, interval=25))
        await asyncio.sleep(1)  # the first pass is done: nothing to do, and it waits
        await letter_to_agency(embedded, "71")
        deadline = time.monotonic() + 10  # well before the next pass, 25 s after the first
        while not system.received():
            assert time.monotonic() < deadline, "the copy waited for the next pass"
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(running, 5)  # a stop does not wait for the poll either
    assert len(system.received()) == 1


class BusyGateway(GatewayClient):
    """The unit's client, whose first acknowledgement is answered 429, as a gateway answers a
    unit past its rate limit."""

    refusals = 1

    async def ack(
        self, delivery_id: str, *, fail: str | None = None, acknowledgement: str | None = None
    ) -> dict[str, Any]:
        if self.refusals:
            self.refusals -= 1
            raise ApiError(429, "rate_limited", "too many requests; try again in 0.1 s", {})
        return await super().ack(delivery_id, fail=fail, acknowledgement=acknowledgement)


async def test_a_busy_gateway_leaves_the_rest_for_the_next_pass(
    embedded: Stack, agency: tuple[str, Agency]
) -> None:
    name, system = agency
    adapter = adapter_class(name).from_settings(system.settings(AGENCY_UNIT, embedded.keys))
    for number in ("61", "62"):
        await letter_to_agency(embedded, number)
    async with BusyGateway(embedded.url, embedded.tokens[AGENCY_UNIT]) as client:
        first = await Connector(adapter, client).run_once()
        assert (first.delivered, first.deferred) == (0, 1)
        second = await Connector(adapter, client).run_once()
        assert (second.delivered, second.deferred) == (2, 0)
        assert (await client.inbox())["items"] == []
    assert len(system.received()) == 2  # the copy handed over before the 429, kept once


async def test_refusals_come_back_with_their_codes(
    embedded: Stack, agency: tuple[str, Agency]
) -> None:
    name, system = agency
    adapter, client = connector(embedded, name, system)
    system.put("broken", b"<edXML><unfinished")
    system.put("nobody", letter_from_agency("61", to="000.00.99.H07"))
    system.put("fine", letter_from_agency("62"))
    async with client:
        done = await Connector(adapter, client).run_once()
    assert (done.sent, done.refused) == (1, 2)
    assert system.outcome("broken") == ("rejected", "xml_malformed")
    assert system.outcome("nobody") == ("rejected", "unknown_recipient")
    assert system.outcome("fine") == ("sent", None)


def test_an_adapter_checks_its_own_settings(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        adapter_class("folder").from_settings({"unit": "nope", "in": tmp_path, "out": tmp_path})
    assert "not an OrganId" in str(caught.value) and "apart" in str(caught.value)
    with pytest.raises(ConfigError, match="no adapter 'fax' is installed"):
        adapter_class("fax")
