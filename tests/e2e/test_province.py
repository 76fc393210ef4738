"""A letter to every unit of the province: accepted in one piece, one copy per unit, each in
its inbox, on its webhook or on its queue, and every copy's events in the ledger."""

from __future__ import annotations

import asyncio
import hashlib
import time

from gatewaystack import SENDER, Stack

from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import Organization
from gateway.ledger import EventType, Query


async def test_a_letter_to_every_unit_is_accepted_and_every_copy_queued(province: Stack) -> None:
    directory = province.runtime.gateway.directory
    everyone = [u for u in directory if u.active and u.code != SENDER]
    assert len(everyone) > 800
    package = build_letter(
        unit(SENDER, directory),
        [Organization(u.code, u.name) for u in everyone],
        "Về việc triển khai kế hoạch chuyển đổi số toàn tỉnh",
    )
    data = sign_as_unit(package, province.keys)
    started = time.monotonic()
    async with GatewayClient(province.url, province.tokens[SENDER]) as gw:
        submitted = await gw.submit(data)
    assert submitted.status == 202
    answer = submitted.answer
    assert [r["code"] for r in answer["recipients"]] == [u.code for u in everyone]
    by_mode = {str(u.delivery) for u in everyone}
    assert by_mode == {"pull", "push", "amqp"}

    key = answer["document_key"]
    ledger = province.runtime.ledger
    native = province.kind != "embedded"  # amqp units read their own queues there

    async def every_copy_on_its_way() -> bool:
        page = await ledger.query(Query(document=key, events=(EventType.QUEUED,)), limit=2000)
        return len({e.event.recipient for e in page.entries}) == len(everyone)

    deadline = time.monotonic() + 60
    while not await every_copy_on_its_way():
        assert time.monotonic() < deadline, "not every copy was queued within 60 s"
        await asyncio.sleep(0.1)
    queued_after = time.monotonic() - started
    pushed = {u.code for u in everyone if str(u.delivery) == "push"}
    while len({d for d, _ in province.webhook.received}) < len(pushed):
        assert time.monotonic() < deadline, "not every push unit got its copy within 60 s"
        await asyncio.sleep(0.1)
    print(
        f"\n{len(everyone)} copies queued in {queued_after:.2f} s, pushed in "
        f"{time.monotonic() - started:.2f} s ({province.kind})"
    )

    (submitted_entry,) = (
        await ledger.query(Query(document=key, events=(EventType.SUBMITTED,)))
    ).entries
    details = submitted_entry.event.details
    codes = [u.code for u in everyone]
    assert details["recipient_count"] == len(codes)
    assert details["recipients_sha256"] == hashlib.sha256("\n".join(codes).encode()).hexdigest()

    inboxed = {
        u.code
        for u in everyone
        if str(u.delivery) == "pull" or (str(u.delivery) == "amqp" and not native)
    }
    pull_unit = sorted(inboxed)[0]
    token_unit = province.tokens.get(pull_unit)
    if token_unit is None:
        from gateway.service.tokens import Role, issue_token

        token_unit = (await issue_token(ledger.engine, pull_unit, Role.UNIT)).token
    async with GatewayClient(province.url, token_unit) as gw:
        items = (await gw.inbox())["items"]
    assert [i["document_key"] for i in items] == [key]
