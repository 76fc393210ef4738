"""``gateway demo``: an embedded gateway and a handful of simulated agency systems exchanging
letters across the sample province, over the real HTTP API, then a summary and the checks an
auditor would make (the whole ledger, and one receipt with nothing but the public key)."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.api.app import build_app
from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    listed_package,
    make_attachment,
    sign_as_unit,
    unit,
)
from gateway.config import LedgerSettings, Settings
from gateway.directory import Directory, Unit
from gateway.envelope import Organization
from gateway.ledger import EventType, Query, verify_receipt
from gateway.ledger.checkpoint import NoteVerifier
from gateway.ledger.keys import load_gateway_public_key
from gateway.service.runtime import Runtime, start_runtime
from gateway.service.tokens import Role, issue_token

Say = Callable[[str], None]

SUBJECTS = [
    "Về việc triển khai kế hoạch cải cách hành chính năm 2027",
    "Về việc báo cáo kết quả thực hiện chuyển đổi số quý IV",
    "Về việc tổ chức hội nghị tổng kết công tác năm",
    "Về việc rà soát thủ tục hành chính thuộc thẩm quyền giải quyết",
    "Về việc tăng cường công tác phòng, chống thiên tai",
    "Về việc chuẩn bị nội dung kỳ họp Hội đồng nhân dân",
]


def _agencies(directory: Directory, count: int, rng: random.Random) -> list[Unit]:
    """Active pull units at levels 1–3: their systems are simulated by polling the API."""
    candidates = [u for u in directory if u.active and str(u.delivery) == "pull" and u.level <= 3]
    top = [u for u in candidates if u.level == 1]
    return top + rng.sample([u for u in candidates if u.level > 1], count - len(top))


class Demo:
    def __init__(self, runtime: Runtime, url: str, keys: Path, say: Say) -> None:
        self.runtime = runtime
        self.url = url
        self.keys = keys
        self.say = say
        self.tokens: dict[str, str] = {}
        self.rejections: Counter[str] = Counter()

    def client(self, code: str) -> GatewayClient:
        return GatewayClient(self.url, self.tokens[code])

    async def send(self, sender: Unit, recipients: list[Unit], subject: str, number: int) -> str:
        attachments = [
            make_attachment("cong-van.pdf", b"%PDF-1.4\n% " + subject.encode() + b"\n%%EOF\n"),
            make_attachment(
                "phu-luc.txt", f"Phụ lục kèm theo công văn số {number}".encode(), index=2
            ),
        ]
        package = build_letter(
            unit(sender.code, self.runtime.gateway.directory),
            [unit(r.code, self.runtime.gateway.directory) for r in recipients],
            subject,
            content="Đề nghị các đơn vị triển khai thực hiện.",
            attachments=attachments,
            number=str(number),
            priority=number % 2,
        )
        async with self.client(sender.code) as gw:
            submitted = await gw.submit(sign_as_unit(package, self.keys))
        return submitted.document_key

    async def status(self, responder: str, key: str, code: str) -> None:
        package = build_status(unit(responder, self.runtime.gateway.directory), key, code)
        async with self.client(responder) as gw:
            await gw.submit(sign_as_unit(package, self.keys))

    async def receive_all(self, code: str) -> list[dict[str, Any]]:
        """What a unit's document system does every few minutes: take a page of its inbox
        with the packages in it, store them, acknowledge the page."""
        received: list[dict[str, Any]] = []
        async with self.client(code) as gw:
            while True:
                items = (await gw.inbox(packages=True))["items"]
                if not items:
                    return received
                for item in items:  # one too large to list is fetched on its own
                    fetched = listed_package(item) or await gw.fetch(item["delivery_id"])
                    assert fetched.data  # a real system would file it here
                answers = await gw.ack_all([item["delivery_id"] for item in items])
                refused = [a for a in answers if "problem" in a]
                if refused:
                    raise RuntimeError(f"{code} could not acknowledge: {refused[0]['problem']}")
                received += items

    async def attempt(self, label: str, work: Callable[[], Any]) -> None:
        """Something that must be refused; count its code."""
        try:
            await work()
        except ApiError as e:
            self.rejections[e.code] += 1
            self.say(f"  refused as expected: {label} -> {e.status} {e.code}")
        else:
            raise RuntimeError(f"the gateway accepted {label}")


async def _wait_for_inboxes(demo: Demo, codes: list[str], expected: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        total = 0
        for code in codes:
            async with demo.client(code) as gw:
                total += len((await gw.inbox(limit=500))["items"])
        if total >= expected:
            return
        await asyncio.sleep(0.2)


async def run_demo(
    work_dir: Path, *, letters: int = 6, agencies: int = 8, seed: int = 7, say: Say = print
) -> dict[str, Any]:
    """Run the whole demo in ``work_dir``; return the summary (also printed through ``say``)."""
    started = time.monotonic()
    rng = random.Random(seed)
    settings = Settings(
        home=work_dir / "var",
        ledger=LedgerSettings(origin="demo.gateway.local/ledger", checkpoint_entries=50),
    )
    say(f"Starting an embedded gateway in {work_dir} (SQLite, local bus, sample province)…")
    runtime = await start_runtime(settings, say=lambda text: say(f"  {text}"))
    runner = web.AppRunner(build_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    demo = Demo(runtime, f"http://127.0.0.1:{port}", settings.home / "keys", say)
    try:
        directory = runtime.gateway.directory
        units = _agencies(directory, agencies, rng)
        for u in units:
            demo.tokens[u.code] = (
                await issue_token(runtime.ledger.engine, u.code, Role.UNIT)
            ).token
        say(f"API on {demo.url}; {len(units)} simulated agency systems:")
        for u in units:
            say(f"  {u.code}  {u.name}")

        say(f"Sending {letters} signed letters with attachments…")
        sent: list[tuple[str, Unit, list[Unit]]] = []
        for i in range(letters):
            sender = units[i % len(units)]
            recipients = rng.sample([u for u in units if u != sender], 3)
            key = await demo.send(sender, recipients, SUBJECTS[i % len(SUBJECTS)], 100 + i)
            sent.append((key, sender, recipients))
            say(f"  [{i + 1}/{letters}] {sender.code} -> {', '.join(r.code for r in recipients)}")

        copies = sum(len(r) for _, _, r in sent)
        await _wait_for_inboxes(demo, [u.code for u in units], copies)
        say("Each agency system takes its inbox, letters and all, and acknowledges it…")
        delivered = 0
        for u in units:
            delivered += len([i for i in await demo.receive_all(u.code) if i["kind"] == "document"])
        say(f"  {delivered} of {copies} copies delivered")

        say("Recipients answer with statuses (01 arrived, 03 accepted, 06 done; one 02 rejected)…")
        statuses = 0
        for n, (key, _sender, recipients) in enumerate(sent):
            for m, r in enumerate(recipients):
                codes = ["01", "02"] if (n, m) == (0, 0) else ["01", "03", "06"]
                for code in codes:
                    await demo.status(r.code, key, code)
                    statuses += 1
        say(f"  {statuses} status packets routed back to the senders")

        key, sender, recipients = sent[-1]
        say(f"{sender.code} recalls its last letter (13); {recipients[0].code} agrees (15)…")
        await demo.status(sender.code, key, "13")
        await demo.status(recipients[0].code, key, "15")

        say("Attempts the gateway must refuse:")
        first_key, first_sender, first_recipients = sent[1]
        await demo.attempt(
            "a status 03 after 06",
            lambda: demo.status(first_recipients[0].code, first_key, "03"),
        )
        outsider = next(u for u in units if u != first_sender and u not in first_recipients)
        await demo.attempt(
            "a status from a unit that never received the letter",
            lambda: demo.status(outsider.code, first_key, "01"),
        )
        await demo.attempt(
            "a recall by a recipient",
            lambda: demo.status(first_recipients[1].code, first_key, "13"),
        )
        tampered = _tampered(demo, units[0], units[1])
        await demo.attempt("a package altered after signing", tampered)
        await demo.attempt("a letter to a unit that does not exist", _to_nobody(demo, units[0]))

        summary = await _summary(demo, sent)
        say("")
        say("Summary")
        width = max(len(k) for k in summary["table"])
        for label, value in summary["table"].items():
            say(f"  {label:<{width}}  {value}")

        say("")
        say("Checking like an auditor…")
        public_key = load_gateway_public_key(settings.home / "keys")
        verifier = NoteVerifier(settings.ledger.origin, public_key)
        await runtime.ledger.checkpoint()
        report = await runtime.ledger.verify(verifier)
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify: {report.finding}")
        say(f"  ledger: {report.entries} entries recomputed, {report.checkpoints} checkpoints OK")
        receipt = await runtime.ledger.receipt_for_document(key)
        checked = verify_receipt(receipt.to_json(), verifier)
        say(
            f"  receipt of {key}: {len(checked.entries)} entries proven in tree of size "
            f"{checked.checkpoint.size}, signature OK with the gateway's public key alone"
        )
        summary["ledger_entries"] = report.entries
        summary["receipt_entries"] = len(checked.entries)
        summary["seconds"] = round(time.monotonic() - started, 1)
        say(f"Done in {summary['seconds']} s.")
        return summary
    finally:
        await runner.cleanup()
        await runtime.stop(grace=2)


def _to_nobody(demo: Demo, sender: Unit) -> Callable[[], Any]:
    async def submit() -> None:
        nobody = Organization("000.00.99.H07", "Đơn vị không có trong danh bạ")
        package = build_letter(
            unit(sender.code, demo.runtime.gateway.directory), [nobody], "Thử", number="501"
        )
        async with demo.client(sender.code) as gw:
            await gw.submit(sign_as_unit(package, demo.keys))

    return submit


def _tampered(demo: Demo, sender: Unit, recipient: Unit) -> Callable[[], Any]:
    async def submit() -> None:
        directory = demo.runtime.gateway.directory
        package = build_letter(
            unit(sender.code, directory), [unit(recipient.code, directory)], "Bản gốc", number="500"
        )
        data = sign_as_unit(package, demo.keys).replace("Bản gốc".encode(), "Bản sửa".encode())
        async with demo.client(sender.code) as gw:
            await gw.submit(data)

    return submit


async def _summary(demo: Demo, sent: list[tuple[str, Unit, list[Unit]]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    after = None
    while True:
        page = await demo.runtime.ledger.query(Query(), after=after, limit=1000)
        for entry in page.entries:
            counts[entry.event.type.value] += 1
            if entry.event.type is EventType.STATUS and entry.event.code:
                codes[entry.event.code] += 1
        if page.next_after is None:
            break
        after = page.next_after
    table = {
        "letters sent": str(len(sent)),
        "copies delivered": str(counts["delivered"]),
        "statuses": ", ".join(f"{c}×{n}" for c, n in sorted(codes.items())),
        "rejections by code": ", ".join(f"{c}×{n}" for c, n in sorted(demo.rejections.items())),
        "ledger events": ", ".join(f"{t} {n}" for t, n in sorted(counts.items())),
    }
    return {"table": table, "counts": dict(counts), "rejections": dict(demo.rejections)}


def demo_in_temporary_folder(keep: Path | None, say: Say) -> dict[str, Any]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(keep, say=say))
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as folder:
        return asyncio.run(run_demo(Path(folder), say=say))
