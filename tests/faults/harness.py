"""What every fault case does: a `gateway serve` process on the private services, a steady load
of letters and of recipients taking them (pull units over HTTP, a push unit's webhook, AMQP
units' own consumers), a TCP proxy that can cut the broker off, and the checks made after the
fault: every letter answered 2xx reached every recipient once (pull) or at least once with one
delivery id (push, AMQP), the ledger verifies, each copy's events are in causal order, and no
submission waited longer than the case's bound."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp
from gatewaystack import Webhook
from services import free_port
from tcpproxy import TcpProxy

from gateway.bench.procstat import with_children
from gateway.bench.run import wait_ready
from gateway.bus.address import broker_hosts
from gateway.bus.codec import is_notice
from gateway.client import build_letter, unit
from gateway.db.engine import create_engine
from gateway.directory import Directory, load_directory
from gateway.envelope import build_package
from gateway.ledger import EventType, Query, SqlLedger
from gateway.ledger.checkpoint import NoteVerifier
from gateway.ledger.keys import load_gateway_public_key
from gateway.service.tokens import Role, issue_token
from gateway.trust import init_keys, load_unit_signer, sign_package

__all__ = ["TcpProxy"]  # the cases cut the broker off with it

ORIGIN = "gateway.test/faults"
SENDER = "000.00.05.H07"
PULL = ("000.00.06.H07", "000.00.10.H07")
PUSH = "000.00.07.H07"
NATIVE = ("000.01.20.H07", "000.01.21.H07", "000.01.22.H07", "000.01.23.H07")


def directory_text(webhook_url: str) -> str:
    return f"""\
code,name,parent_code,level,delivery,endpoint,status
000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active
{SENDER},Sở Nội vụ,000.00.00.H07,2,pull,,active
{PULL[0]},Sở Tài chính,000.00.00.H07,2,pull,,active
{PULL[1]},Sở Công thương,000.00.00.H07,2,pull,,active
{PUSH},Sở Tư pháp,000.00.00.H07,2,push,{webhook_url},active
000.00.20.H07,Ủy ban nhân dân huyện,000.00.00.H07,2,pull,,active
{NATIVE[0]},Phòng Nội vụ huyện,000.00.20.H07,3,amqp,,active
{NATIVE[1]},Phòng Tài chính huyện,000.00.20.H07,3,amqp,,active
{NATIVE[2]},Phòng Tư pháp huyện,000.00.20.H07,3,amqp,,active
{NATIVE[3]},Phòng Y tế huyện,000.00.20.H07,3,amqp,,active
"""


@dataclass
class Province:
    folder: Path
    directory: Directory
    directory_file: Path
    keys: Path


def make_province(folder: Path, webhook_url: str) -> Province:
    directory_file = folder / "units.csv"
    directory_file.write_text(directory_text(webhook_url), encoding="utf-8")
    directory = load_directory(directory_file)
    init_keys(folder / "keys", directory)
    return Province(folder, directory, directory_file, folder / "keys")


class GatewayProcess:
    """`gateway serve` on the private services, started, killed and started again on one
    port. Several on one database share a bus ``namespace`` (each logs to its own file)."""

    def __init__(
        self,
        province: Province,
        database_url: str,
        amqp_url: str,
        workers: int = 1,
        namespace: str | None = None,
        log_name: str = "serve.log",
        **env: str,
    ) -> None:
        self.province = province
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.namespace = namespace or f"flt{uuid.uuid4().hex[:10]}"
        self.log = province.folder / log_name
        self.env = (
            {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
            | {
                "GATEWAY_HOME": str(province.folder / "var"),
                "GATEWAY_KEYS": str(province.keys),
                "GATEWAY_DIRECTORY": str(province.directory_file),
                "GATEWAY_DATABASE_URL": database_url,
                "GATEWAY_AMQP_URL": amqp_url,
                "GATEWAY_BUS_NAMESPACE": self.namespace,
                "GATEWAY_API_RATE": "100000",
                "GATEWAY_API_BURST": "100000",
                "GATEWAY_LEDGER_ORIGIN": ORIGIN,
                "GATEWAY_BUS_RETRY_SCHEDULE": "1,2",
                "GATEWAY_API_UPLOADS_PER_TOKEN": "1000",  # what is measured is the fault's effect
            }
            | env
        )
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(self.port),
                 "--grace", "5", "--workers", str(self.workers)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        await wait_ready(self.url, self.process, self.log)

    def kill(self) -> None:
        """SIGKILL to the gateway process (its only process, or its supervisor)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def kill_one_worker(self) -> int:
        """SIGKILL to one worker; the supervisor stops the others and exits: its status."""
        assert self.process is not None
        workers = [pid for pid in with_children(self.process.pid) if pid != self.process.pid]
        assert len(workers) == self.workers, workers
        os.kill(workers[0], signal.SIGKILL)
        return self.process.wait(60)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


MakeGateway = Callable[..., Awaitable[GatewayProcess]]


@dataclass
class Load:
    """Letters from SENDER to ``recipients`` at ``rate`` a second, and the recipients taking
    theirs, for as long as it runs; what each saw. With ``others`` (gateways on the same
    database and bus), letters go to each gateway in turn and each pull unit reads through
    one of them."""

    gateway: GatewayProcess
    amqp_url: str  # the AMQP units' consumers read the broker directly (any of its hosts)
    recipients: tuple[str, ...]
    rate: float = 20
    others: tuple[GatewayProcess, ...] = ()
    accepted: dict[str, float] = field(default_factory=dict)  # document key -> seconds waited
    waits: list[float] = field(default_factory=list)  # every submission's, whatever answered
    refused: Counter[str] = field(default_factory=Counter)
    # unit -> document key -> delivery ids it received (pull: acknowledged)
    received: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    # AMQP unit -> the ids of the transport notices it read on its queue (as a sender)
    notices: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    consumer_errors: Counter[str] = field(default_factory=Counter)
    copies: Counter[tuple[str, str]] = field(default_factory=Counter)  # AMQP: (unit, id) -> n
    submitting: asyncio.Event = field(default_factory=asyncio.Event)
    natives_on: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: dict[str, str] = field(default_factory=dict)
    letters: int = 0
    closing: bool = False  # set when the load ends: every loop stops at its next turn

    async def issue_tokens(self) -> None:
        engine = create_engine(self.gateway.database_url)
        try:
            for code in (SENDER, *PULL, PUSH):
                self.tokens[code] = (await issue_token(engine, code, Role.UNIT)).token
            issued = await issue_token(engine, "000.00.00.H07", Role.OPERATOR)
            self.tokens["operator"] = issued.token
        finally:
            await engine.dispose()

    def _letter(self, signer: tuple[object, object]) -> bytes:
        self.letters += 1
        directory = self.gateway.province.directory
        package = build_letter(
            unit(SENDER, directory),
            [unit(code, directory) for code in self.recipients],
            f"Về việc thử lỗi số {self.letters}",
            number=f"{self.gateway.namespace[3:9]}{self.letters}",
        )
        key, cert = signer
        return sign_package(build_package(package), key, cert)  # type: ignore[arg-type]

    def _url(self, turn: int) -> str:
        gateways = (self.gateway, *self.others)
        return gateways[turn % len(gateways)].url

    async def _submit(self, session: aiohttp.ClientSession, data: bytes, url: str) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[SENDER]}",
                   "Content-Type": "application/xml"}  # fmt: skip
        started = time.monotonic()
        try:
            async with session.post(f"{url}/v1/packages", data=data, headers=headers) as r:
                answer = await r.json(content_type=None)
            if r.status in (200, 202):
                self.accepted[answer["document_key"]] = time.monotonic() - started
            else:
                self.refused[str(answer.get("code", r.status))] += 1
        except (aiohttp.ClientError, TimeoutError) as e:
            self.refused[type(e).__name__] += 1
        self.waits.append(time.monotonic() - started)

    async def submit(self) -> None:
        """Offer letters at the rate while ``submitting`` is set (open loop: a slow answer
        does not slow the next letter)."""
        signer = load_unit_signer(self.gateway.province.keys, SENDER)
        pending: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=180)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            next_at = time.monotonic()
            while self.submitting.is_set():
                data = self._letter(signer)
                task = asyncio.create_task(self._submit(session, data, self._url(self.letters)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1 / self.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if pending:
                await asyncio.wait(pending)

    async def pull(self, code: str) -> None:
        """A pull unit's system: list, fetch, acknowledge, again and again; a failed request
        is tried again a moment later."""
        headers = {"Authorization": f"Bearer {self.tokens[code]}"}
        timeout = aiohttp.ClientTimeout(total=30)
        base = self._url(PULL.index(code))
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while not self.closing:
                try:
                    async with session.get(f"{base}/v1/inbox?limit=100") as r:
                        items = (await r.json())["items"] if r.status == 200 else []
                    for item in items:
                        delivery = item["delivery_id"]
                        async with session.get(f"{base}/v1/inbox/{delivery}") as r:
                            await r.read()
                            if r.status != 200:
                                continue
                        if await self._acknowledge(session, f"{base}/v1/inbox/{delivery}/ack"):
                            self.received[code][item["document_key"]].add(delivery)
                    if not items:
                        await asyncio.sleep(0.1)
                except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                    self.consumer_errors[f"{code}: {type(e).__name__}"] += 1
                    await asyncio.sleep(0.2)

    async def _acknowledge(self, session: aiohttp.ClientSession, url: str) -> bool:
        """Acknowledge until an answer comes: an acknowledgement whose answer was lost (the
        gateway killed after recording it) is sent again, and answered the same."""
        while True:
            try:
                async with session.post(url, json={"result": "done"}) as r:
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError) as e:
                self.consumer_errors[f"acknowledge: {type(e).__name__}"] += 1
                await asyncio.sleep(0.2)

    async def consume(self, code: str) -> None:
        """An AMQP unit's own consumer, on the broker directly, from when ``natives_on`` is
        set; it connects again whenever the broker goes away (to the next of its hosts)."""
        await self.natives_on.wait()
        queue_name = f"{self.gateway.namespace}.unit.{code}"
        hosts = broker_hosts(self.amqp_url)
        attempt = 0
        while not self.closing:
            attempt += 1
            try:
                connection = await aio_pika.connect(hosts[attempt % len(hosts)].url, timeout=5)
            except Exception as e:  # the broker is away: try again, as a consumer would
                self.consumer_errors[f"{code}: {type(e).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            try:
                channel = await connection.channel()
                queue = await channel.declare_queue(queue_name, passive=True)
                while not self.closing:
                    message = await queue.get(fail=False, timeout=5)
                    if message is None:
                        await asyncio.sleep(0.1)
                        continue
                    headers = message.headers
                    if is_notice(headers):  # told as a sender: not a copy
                        self.notices[code].add(str(headers["gw-notice-id"]))
                    else:
                        document = str(headers["gw-document-key"])
                        self.received[code][document].add(str(headers["gw-delivery-id"]))
                        self.copies[(code, str(headers["gw-delivery-id"]))] += 1
                    await message.ack()
            except Exception as e:  # the broker went away: connect again
                self.consumer_errors[f"{code}: {type(e).__name__}"] += 1
                await asyncio.sleep(0.5)
            finally:  # a connection to a dead broker may never answer its close
                # (asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # task's own cancellation, and this loop then never ends)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await connection.close()

    def missing(self, webhook: Webhook) -> dict[str, int]:
        """Per recipient, accepted letters it has not received yet."""
        pushed: dict[str, set[str]] = defaultdict(set)
        for headers in list(webhook.headers):
            pushed[headers["x-gateway-document-key"]].add(headers["x-gateway-delivery-id"])
        self.received[PUSH] = pushed  # type: ignore[assignment]
        return {
            code: sum(1 for key in self.accepted if not self.received[code].get(key))
            for code in self.recipients
        }


@contextlib.asynccontextmanager
async def running(load: Load, natives: bool = True) -> AsyncIterator[None]:
    """The load's tasks for the duration of the block: submissions start at once, the
    recipients take theirs until the end."""
    await load.issue_tokens()
    if natives:
        load.natives_on.set()
    load.submitting.set()
    tasks = [asyncio.create_task(load.submit())]
    tasks += [asyncio.create_task(load.pull(c)) for c in load.recipients if c in PULL]
    tasks += [asyncio.create_task(load.consume(c)) for c in load.recipients if c in NATIVE]
    try:
        yield
    finally:
        load.submitting.clear()
        load.closing = True  # the loops end even where a cancellation got lost
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=10)


async def stop_submitting(load: Load) -> None:
    load.submitting.clear()
    while len(load.waits) < load.letters:  # every submission answered
        await asyncio.sleep(0.1)


async def wait_delivered(load: Load, webhook: Webhook, timeout: float = 90) -> float:
    """Until every accepted letter reached every recipient: the seconds it took."""
    started = time.monotonic()
    while any(load.missing(webhook).values()):
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"not delivered within {timeout:.0f} s: {load.missing(webhook)}; "
                f"consumer errors {dict(load.consumer_errors)}"
            )
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def check_ledger(load: Load) -> tuple[int, dict[tuple[str, str | None], list[EventType]]]:
    """The ledger verifies, every accepted letter is in it, and every copy's events are in
    causal order with one queued and (pull, push) one delivered; returns the number of
    entries and the events of each (document, recipient)."""
    engine = create_engine(load.gateway.database_url)
    ledger = SqlLedger(engine, origin=ORIGIN)
    try:
        key = load_gateway_public_key(load.gateway.province.keys)
        # The last deliveries are recorded a moment after they happen; a copy published while
        # the database was down is recorded queued when the relay publishes it again (30 s).
        for _ in range(300):
            events: dict[tuple[str, str | None], list[EventType]] = defaultdict(list)
            after = None
            while True:
                page = await ledger.query(Query(), after=after, limit=5000)
                for entry in page.entries:
                    if entry.event.document is not None:
                        events[(entry.event.document, entry.event.recipient)].append(
                            entry.event.type
                        )
                if page.next_after is None:
                    break
                after = page.next_after
            if all(
                EventType.QUEUED in events[(document, code)]
                and (code in NATIVE or EventType.DELIVERED in events[(document, code)])
                for document in load.accepted
                for code in load.recipients
            ):
                break
            await asyncio.sleep(0.25)
        report = await ledger.verify(NoteVerifier(ORIGIN, key))
    finally:
        await engine.dispose()
    assert report.ok, report.finding
    submitted = {
        d for (d, r), kinds in events.items() if r is None and EventType.SUBMITTED in kinds
    }
    assert set(load.accepted) <= submitted
    for document in load.accepted:
        for code in load.recipients:
            kinds = events[(document, code)]
            assert kinds and kinds[0] is EventType.QUEUED, (document, code, kinds)
            assert kinds.count(EventType.QUEUED) == 1, (document, code, kinds)
            if code not in NATIVE:
                assert kinds.count(EventType.DELIVERED) == 1, (document, code, kinds)
                assert kinds[-1] is EventType.DELIVERED, (document, code, kinds)
    # nothing reached a recipient that the gateway did not accept
    for code in load.recipients:
        assert set(load.received[code]) <= submitted, code
    return report.entries, events


def check_received(load: Load) -> None:
    """Pull units: each letter once (one delivery id acknowledged); push and AMQP units: at
    least once, always with the same delivery id."""
    for code in load.recipients:
        for document in load.accepted:
            ids = load.received[code][document]
            assert len(ids) == 1, (code, document, ids)


@dataclass
class Figures:
    """What a case measured, for docs/reliability.md."""

    case: str
    accepted: int = 0
    refused: int = 0
    longest_wait: float = 0.0
    fault_seconds: float = 0.0
    caught_up: float = 0.0
    entries: int = 0
    extra: str = ""

    def line(self) -> str:
        return (
            f"FAULTS {self.case}: {self.accepted} accepted, {self.refused} refused, fault "
            f"{self.fault_seconds:.1f} s, longest submission {self.longest_wait:.1f} s, "
            f"all delivered {self.caught_up:.1f} s after the load, ledger {self.entries} "
            f"entries verified {self.extra}"
        )
