"""The console's pages on a ledger of a million entries: milliseconds per page view.

Fills a scratch database (a SQLite file, or a PostgreSQL schema of its own) with a gateway's
history over the last 90 days: documents between the units of the sample province (809), each
``submitted``, ``queued`` and ``delivered`` to one to three recipients who answer with
statuses, some copies retried, a few dead or expired, some refusals; the ledger through
``SqlLedger.append`` (real entries, tree nodes and signed checkpoints, times spread over the
90 days) and the service's tables (packages, copies, recipients' states) by bulk inserts. Then
starts a gateway on it, signs in to the console as an operator and times each page (the median
of --views views, measured at the client, over HTTP on 127.0.0.1).

    .venv/bin/python bench/console_scale.py [--backend sqlite|postgresql|both]
        [--entries 1000000] [--views 5] [--database-url URL] [--keep DIR] [--reuse]

--keep DIR keeps the SQLite file and the gateway's home in DIR (and, with PostgreSQL, the
schema named in DIR/postgresql-url) so that --reuse measures again without filling; without
--keep everything is removed (a kept schema is dropped by hand: DROP SCHEMA ... CASCADE).
Filling a million entries takes about 4 minutes on SQLite and 2.5 on PostgreSQL (2 cores
shared with other work); docs/console.md#speed has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from gateway.api.app import build_app
from gateway.client import build_letter, make_attachment, sign_as_unit
from gateway.config import Secret, Settings
from gateway.db.testing import create_scratch_schema, drop_scratch_schema
from gateway.directory import load_directory
from gateway.directory.load import SAMPLE_PATH
from gateway.envelope import Organization
from gateway.ledger.entry import Event, EventType
from gateway.ledger.keys import load_gateway_key
from gateway.ledger.store import open_ledger
from gateway.service.models import delivery_table, package_table, recipient_state_table
from gateway.service.runtime import Runtime, keys_folder, start_runtime
from gateway.service.tokens import Role, issue_token

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DAYS = 90
SUBJECTS = (
    "Về việc tổ chức hội nghị tổng kết công tác năm kế hoạch triển khai báo cáo tình hình "
    "thực hiện nhiệm vụ quý phê duyệt dự toán ngân sách tuyển dụng viên chức đào tạo bồi "
    "dưỡng cán bộ phòng chống thiên tai kiểm tra an toàn thực phẩm cải cách hành chính"
)
WORDS = SUBJECTS.split()
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# A letter with a 2 KB attachment: the document page reads its attachments.
LETTER = build_letter(
    Organization("000.00.05.H07", "Sở Nội vụ"),
    [Organization("000.00.06.H07", "Sở Tài chính")],
    "Về việc tổ chức hội nghị tổng kết năm",
    attachments=[make_attachment("cong-van.pdf", b"%PDF-1.4 " + bytes(2048))],
)


@dataclass
class Filled:
    """What the filler made, for choosing what the pages ask."""

    documents: int = 0
    entries: int = 0
    keys: list[str] = field(default_factory=list)  # a sample of documents' keys
    senders: list[str] = field(default_factory=list)


def subject(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))


def histories(
    units: list[str], raw: bytes, rng: random.Random
) -> Iterator[tuple[dict[str, Any], list[tuple[Event, Any]]]]:
    """Documents without end: (the package's row, [(event, its copy's row or None)]) each."""
    n = 0
    while True:
        n += 1
        sender = rng.choice(units)
        document_id = f"{sender},2026/01/01,{n}/UBND-VP"
        key = f"{sender}|{document_id}"
        sha = hashlib.sha256(key.encode()).hexdigest()
        package = {
            "package_id": hashlib.sha1(key.encode()).hexdigest(),
            "kind": "document",
            "sender": sender,
            "document_id": document_id,
            "document_key": key,
            "sha256": sha,
            "status_code": None,
            "subject": subject(rng),
            "priority": 1 if rng.random() < 0.05 else 0,
            "signature_state": "valid",
            "size": 0,
            "raw": raw,  # one real letter for all: the rows have a package's weight
            "raw_claim": None,
            "answer": "{}",
            "document_identity": document_id,
        }
        events: list[tuple[Event, Any]] = [
            (Event(EventType.SUBMITTED, key, sender, None, sha), None)
        ]
        for recipient in rng.sample(units, rng.choice((1, 1, 2, 2, 3))):
            copy = {
                "delivery_id": f"d-{hashlib.sha1((key + recipient).encode()).hexdigest()[:24]}-0",
                "package_id": package["package_id"],
                "document_key": key,
                "sender": sender,
                "recipient": recipient,
                "mode": "pull",
                "transport": "delivered",
                "last_outcome": "delivered",
                "attempt": 1,
                "reason": None,
                "published": True,
            }
            events.append((Event(EventType.QUEUED, key, sender, recipient, sha), None))
            fate = rng.random()
            if fate < 0.1:
                error = "delivery_failed: answered 503"
                details = {"attempt": 1, "reason": error}
                events.append(
                    (Event(EventType.RETRYING, key, sender, recipient, sha, details=details), None)
                )
                copy["attempt"] = 2
            if fate < 0.002:
                copy |= {"transport": "dead", "last_outcome": "dead_lettered", "reason": "x"}
                events.append((Event(EventType.DEAD_LETTERED, key, sender, recipient, sha), copy))
                continue
            if fate < 0.004:
                copy |= {"transport": "expired", "last_outcome": "expired", "reason": "ttl"}
                events.append((Event(EventType.EXPIRED, key, sender, recipient, sha), copy))
                continue
            events.append((Event(EventType.DELIVERED, key, sender, recipient, sha), copy))
            for code in ("01", "03")[: rng.choice((0, 1, 2, 2))]:
                events.append((Event(EventType.STATUS, key, recipient, sender, None, code), None))
        if rng.random() < 0.05:
            refusal = Event(EventType.REJECTED, None, sender, None, None, "schema_invalid")
            events.append((refusal, None))
        yield package, events


async def fill(settings: Settings, total: int) -> Filled:
    """``total`` ledger entries and the service rows that go with them, times spread over
    the last DAYS days (one time per appended batch of about 1,000 entries)."""
    keys = keys_folder(settings)
    units = [u.code for u in load_directory(SAMPLE_PATH)]
    key = load_gateway_key(keys)
    ledger = open_ledger(settings, key=key.private_key, certificate_chain=key.certificate_chain)
    start = datetime.now(UTC) - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / (total / 1000)
    clock = {"now": start}
    ledger.clock = lambda: clock["now"]
    rng = random.Random(809)
    made = Filled()
    source = histories(units, sign_as_unit(LETTER, keys), rng)
    t0 = time.perf_counter()
    try:
        while made.entries < total:
            packages: list[dict[str, Any]] = []
            copies: list[Any] = []
            states: list[dict[str, Any]] = []
            events: list[Event] = []
            while len(events) < 1000:
                package, history = next(source)
                packages.append(package)
                events.extend(e for e, _ in history)
                copies.extend(c for _, c in history if c is not None)
                for e, _ in history:
                    if e.type is EventType.QUEUED:
                        states.append(
                            {
                                "document_key": e.document,
                                "recipient": e.recipient,
                                "business": None,
                                "recall_pending": False,
                                "recall_answer": None,
                                "updated_at": clock["now"],
                            }
                        )
            seqs = await ledger.append(events)
            by_key = {
                e.document: s
                for e, s in zip(events, seqs, strict=True)
                if e.type is EventType.SUBMITTED
            }
            for p in packages:
                p["submitted_at"] = clock["now"]
                p["ledger_seq"] = by_key[p["document_key"]]
            for c in copies:
                c["transport_at"] = clock["now"]
            async with ledger.engine.begin() as conn:
                await conn.execute(insert(package_table), packages)
                await conn.execute(insert(delivery_table), copies)
                await conn.execute(insert(recipient_state_table), states)
            made.documents += len(packages)
            made.entries += len(events)
            if len(made.keys) * 10 <= made.entries // 1000:  # a sample along the 90 days
                made.keys.append(packages[0]["document_key"])
                made.senders.append(packages[0]["sender"])
            clock["now"] += step
            if made.documents % 20_000 < len(packages):
                rate = made.entries / (time.perf_counter() - t0)
                print(
                    f"  {made.entries:,} entries, {made.documents:,} documents "
                    f"({rate:,.0f} entries/s)",
                    flush=True,
                )
        await ledger.checkpoint()
        if ledger.engine.dialect.name == "postgresql":
            # what autovacuum does soon after such a load: the planner's statistics
            async with ledger.engine.begin() as conn:
                for table in ("ledger_entry", "gw_package", "gw_delivery", "gw_recipient_state"):
                    await conn.execute(text(f"ANALYZE {table}"))
    finally:
        await ledger.engine.dispose()
    return made


class Console:
    """An operator's browser without the browser: a cookie jar and the CSRF field."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str) -> tuple[int, str, float]:
        t = time.perf_counter()
        async with self.http.get(self.url + path) as response:
            text = await response.text()
        return response.status, text, (time.perf_counter() - t) * 1000

    async def sign_in(self, token: str) -> None:
        _, page, _ = await self.get("/login")
        found = CSRF.search(page)
        assert found is not None
        form = {"token": token, "csrf": found.group(1)}
        async with self.http.post(self.url + "/login", data=form) as response:
            assert response.status == 200, await response.text()


def pages_to_view(made: Filled, size: int) -> list[tuple[str, str]]:
    key = made.keys[len(made.keys) // 2]
    sender = made.senders[0]
    day = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d")
    return [
        ("overview", "/"),
        ("ledger", "/ledger"),
        ("ledger, one entry", f"/ledger?seq={size // 2}"),
        ("documents, newest", "/documents"),
        ("documents, a word of the subject", "/documents?q=" + quote("hội nghị")),
        ("documents, a DocumentId", "/documents?q=" + quote(key.split("|")[1])),
        ("documents, one sender", "/documents?sender=" + sender),
        ("documents, one recipient", "/documents?recipient=" + sender),
        ("documents, dead copies", "/documents?state=dead"),
        ("documents, one day", f"/documents?since={day}&until={day}"),
        ("documents, page 2", "/documents?before=" + str(size // 2)),
        ("a document", "/documents/" + quote(key, safe="")),
        ("dead letters", "/dead"),
        ("units", "/units"),
        ("export, one unit", f"/ledger/export?unit={sender}&format=csv"),
    ]


async def measure(settings: Settings, made: Filled, views: int) -> dict[str, float]:
    runtime: Runtime = await start_runtime(settings, say=lambda _: None)
    runner = web.AppRunner(build_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token = (await issue_token(runtime.ledger.engine, "000.00.00.H07", Role.OPERATOR)).token
    size = await runtime.ledger.size()
    found: dict[str, float] = {}
    try:
        console = Console(f"http://127.0.0.1:{port}")
        try:
            await console.sign_in(token)
            for name, path in pages_to_view(made, size):
                times = []
                for _ in range(views):
                    status, _, ms = await console.get(path)
                    times.append(ms)
                    if status != 200:  # a query past GATEWAY_OPERATION_TIMEOUT: no more
                        print(f"  {name:34} failed: {status} after {ms:.0f} ms", flush=True)
                        break
                else:
                    found[name] = statistics.median(times)
                    print(f"  {name:34} {found[name]:8.1f} ms  {path[:70]}", flush=True)
        finally:
            await console.http.close()
    finally:
        await runner.cleanup()
        await runtime.stop(grace=2)
    return found


async def run(backend: str, args: argparse.Namespace) -> None:
    keep = Path(args.keep) / backend if args.keep else None
    base = keep or Path(tempfile.mkdtemp(prefix="console-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    state = base / "filled.json"
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{base / 'gateway.db'}"
    elif args.reuse and (base / "postgresql-url").exists():
        url = (base / "postgresql-url").read_text()
    else:
        url = await create_scratch_schema(args.database_url)
        (base / "postgresql-url").write_text(url)
    settings = Settings(home=base / "home", database_url=Secret(url))
    try:
        if args.reuse and state.exists():
            made = Filled(**json.loads(state.read_text()))
        else:
            print(f"{backend}: filling {args.entries:,} entries", flush=True)
            runtime = await start_runtime(settings, say=lambda _: None)  # migrate, keys
            await runtime.stop(grace=1)
            t = time.perf_counter()
            made = await fill(settings, args.entries)
            print(f"  filled in {time.perf_counter() - t:.0f} s", flush=True)
            state.write_text(json.dumps(made.__dict__))
        print(
            f"{backend}: {made.entries:,} entries, {made.documents:,} documents; "
            f"median of {args.views} views",
            flush=True,
        )
        await measure(settings, made, args.views)
    finally:
        if keep is None:
            if make_url(url).get_backend_name() != "sqlite":
                await drop_scratch_schema(url)
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--keep", help="keep the databases and homes in this folder")
    parser.add_argument("--reuse", action="store_true", help="measure what --keep kept")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        asyncio.run(run(backend, args))


if __name__ == "__main__":
    main()
