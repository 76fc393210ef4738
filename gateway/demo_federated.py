"""``gateway demo --federated``: two provinces, each with its own embedded gateway (its own
directory, PKI, database and bus), each the other's upstream link. A commune of the sample
province writes to a department of the other; the statuses come back, a recall crosses, the
other gateway is stopped for a while and what was queued for it goes once it is back; then
the letter's path through both ledgers, with both receipts verified offline."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.upstream.pair import Province, ProvinceSpec, prepare_pair, province_directory
from gateway.bus import RetryPolicy
from gateway.client import GatewayClient, build_letter, build_status, sign_as_unit, unit
from gateway.directory import SAMPLE_PATH
from gateway.ledger import verify_receipt
from gateway.ledger.checkpoint import NoteVerifier
from gateway.ledger.keys import load_gateway_public_key
from gateway.service import remote_store
from gateway.service.tokens import Role, issue_token

Say = Callable[[str], None]

# A link that is down is tried again within seconds (the default schedule starts at 30 s).
POLICY = RetryPolicy.of_seconds([0.5, 1.0, 2.0], ttl=3600, max_attempts=100)
INTERVALS = (1.0, 5.0, 2.0)  # outbox relay, inbox expiry, file watcher (seconds)

OTHER_UNITS = [
    ("000.00.00", "Ủy ban nhân dân tỉnh Hòa Bình Xuyên", "", 1),
    ("000.00.01", "Văn phòng Ủy ban nhân dân tỉnh", "000.00.00", 2),
    ("000.00.05", "Sở Nội vụ", "000.00.00", 2),
    ("000.00.06", "Sở Tài chính", "000.00.00", 2),
]
DEPARTMENT = "000.00.05.H08"


class Federated:
    def __init__(self, a: Province, b: Province, say: Say) -> None:
        self.a, self.b, self.say = a, b, say
        self.tokens: dict[tuple[str, str], str] = {}
        self.commune = next(
            u.code
            for u in a.live.gateway.directory
            if u.name.startswith("Ủy ban nhân dân xã") and str(u.delivery) == "pull" and u.active
        )
        self.office = next(
            u.code
            for u in a.live.gateway.directory
            if u.level == 2 and str(u.delivery) == "pull" and u.active
        )

    async def token(self, province: Province, who: str, role: Role = Role.UNIT) -> str:
        key = (province.spec.code, f"{who}:{role.value}")
        if key not in self.tokens:
            issued = await issue_token(province.live.ledger.engine, who, role)
            self.tokens[key] = issued.token
        return self.tokens[key]

    async def client(self, province: Province, who: str, role: Role = Role.UNIT) -> GatewayClient:
        return GatewayClient(province.url, await self.token(province, who, role))

    async def send(self, to: list[str], subject: str) -> str:
        package = build_letter(
            unit(self.commune, self.a.live.gateway.directory), [unit(c) for c in to], subject
        )
        async with await self.client(self.a, self.commune) as gw:
            return (await gw.submit(sign_as_unit(package, self.a.keys))).document_key

    async def answer(self, province: Province, who: str, key: str, code: str) -> None:
        package = build_status(unit(who), key, code)
        async with await self.client(province, who) as gw:
            await gw.submit(sign_as_unit(package, province.keys))

    async def take(self, province: Province, who: str, key: str, kind: str) -> dict[str, Any]:
        """Wait for ``who``'s copy of ``kind`` about ``key``; fetch and acknowledge it."""
        async with await self.client(province, who) as gw:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                items = (await gw.inbox())["items"]
                found = [i for i in items if i["document_key"] == key and i["kind"] == kind]
                if found:
                    fetched = await gw.fetch(found[0]["delivery_id"])
                    await gw.ack(found[0]["delivery_id"])
                    return {"item": found[0], "signature_state": fetched.signature_state}
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{who} never received the {kind} about {key}")

    async def transport(self, key: str, recipient: str) -> str:
        async with await self.client(self.a, self.commune) as gw:
            view = await gw.document(key)
        return str(next(r for r in view["recipients"] if r["code"] == recipient)["transport"])

    async def link_state(self) -> remote_store.LinkState:
        async with self.a.live.ledger.engine.connect() as conn:
            states = await remote_store.link_states(conn)
        return states.get("link:h08", remote_store.LinkState())

    async def path(self, key: str) -> list[str]:
        """The letter's entries in each ledger, from its receipt there, verified offline."""
        lines: list[str] = []
        for province in (self.a, self.b):
            async with await self.client(province, province.spec.system_id, Role.AUDITOR) as gw:
                (receipt,) = await gw.receipts(key)
            public_key = load_gateway_public_key(province.keys)
            origin = province.settings.ledger.origin
            checked = verify_receipt(receipt, NoteVerifier(origin, public_key))
            lines.append(
                f"  {origin}: receipt verified offline with that gateway's public key "
                f"({len(checked.entries)} entries, tree of {checked.checkpoint.size})"
            )
            for entry in checked.entries:
                event = entry.event
                via = event.details.get("link")
                inbound = event.type.value in ("submitted", "status")
                where = ("from link " if inbound else "to link ") + via if via else ""
                party = event.recipient or event.sender or ""
                line = f"    #{entry.seq:<4} {event.type.value:<10} {party:<15} "
                lines.append(f"{line}{event.code or '':<3} {where}".rstrip())
        return lines


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("the federated demo waited too long")
        await asyncio.sleep(0.2)


async def run_federated_demo(work_dir: Path, say: Say = print) -> dict[str, Any]:
    started = time.monotonic()
    sample = SAMPLE_PATH.read_text(encoding="utf-8")
    specs = [
        ProvinceSpec("H07", sample),
        ProvinceSpec("H08", province_directory("H08", OTHER_UNITS)),
    ]
    say(f"Laying out two provinces in {work_dir}: H07 (the sample, 809 units) and H08 (4 units)…")
    a, b = await prepare_pair(work_dir, specs, poll=2.0)
    say("  each with its own directory, PKI, SQLite database and local bus; each trusts both CAs")
    say("  and holds a façade secret for the other; each one's link serves the other's *.Hnn")
    for province in (a, b):
        await province.start(POLICY, INTERVALS)
        say(f"  gateway {province.spec.code} on {province.url}, link to the other at /vxp")
    demo = Federated(a, b, say)
    try:
        say(f"{demo.commune} (a commune of H07) writes to {DEPARTMENT} (H08) and {demo.office}…")
        key = await demo.send(
            [DEPARTMENT, demo.office], "Về việc phối hợp giải quyết hồ sơ liên tỉnh"
        )
        got = await demo.take(b, DEPARTMENT, key, "document")
        await demo.take(a, demo.office, key, "document")
        say(
            f"  arrived in H08, signature {got['signature_state']} against H07's CA; "
            f"and locally in H07"
        )
        for code in ("01", "03", "06"):
            await demo.answer(b, DEPARTMENT, key, code)
            await demo.take(a, demo.commune, key, "status")
        say("  statuses 01, 03, 06 from H08 reached the commune")

        recalled = await demo.send([DEPARTMENT], "Về việc điều chỉnh kế hoạch")
        await demo.take(b, DEPARTMENT, recalled, "document")
        await demo.answer(a, demo.commune, recalled, "13")
        await demo.take(b, DEPARTMENT, recalled, "status")
        await demo.answer(b, DEPARTMENT, recalled, "15")
        await demo.take(a, demo.commune, recalled, "status")
        say("  a second letter recalled (13) across the link and agreed to (15)")

        say("H08's gateway stops; the commune writes three more letters…")
        await b.stop()
        queued = [
            await demo.send([DEPARTMENT], f"Công văn số {n} khi mất kết nối") for n in range(3)
        ]

        async def retrying() -> bool:
            return all([await demo.transport(k, DEPARTMENT) == "retrying" for k in queued])

        await _until(retrying)
        state = await demo.link_state()
        say(
            f"  link h08: {state.waiting} waiting, {state.retrying} retrying; last failure: "
            f"{(state.last_reason or '')[:70]}…"
        )
        await b.start(POLICY, INTERVALS)
        say("H08's gateway is back…")

        async def sent() -> bool:
            return all([await demo.transport(k, DEPARTMENT) == "delivered" for k in queued])

        await _until(sent)
        for k in queued:
            await demo.take(b, DEPARTMENT, k, "document")
        state = await demo.link_state()
        say(
            f"  link h08: {state.waiting} waiting, {state.delivered} sent in all, the three "
            "letters each received once in H08"
        )

        say("")
        say(f"The first letter's path across the two ledgers ({key}):")
        for line in await demo.path(key):
            say(line)
        seconds = round(time.monotonic() - started, 1)
        say(f"Done in {seconds} s.")
        return {"document": key, "seconds": seconds, "relayed": state.delivered}
    finally:
        for province in (a, b):
            await province.stop()


def federated_demo_in_temporary_folder(keep: Path | None, say: Say) -> dict[str, Any]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_federated_demo(keep, say=say))
    with tempfile.TemporaryDirectory(prefix="gateway-demo-federated-") as folder:
        return asyncio.run(run_federated_demo(Path(folder), say=say))
