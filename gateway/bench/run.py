"""``gateway bench``: start a gateway in its own process, submit signed letters to it over HTTP
(flat out from C connections, or at a fixed open-loop rate), let the recipient units pull,
fetch and acknowledge them, and report throughput, latency, CPU and memory beside the raw
stages measured on the same bytes in the same run. See docs/performance.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64decode
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from gateway.bench import stages
from gateway.bench.procstat import CpuMeter, memory_kib, pids_named, with_children
from gateway.bench.soak import Soak, format_soak
from gateway.client import build_letter, make_attachment, unit
from gateway.directory import Directory, load_directory
from gateway.envelope import Package, build_package
from gateway.memory import freeze_start_up
from gateway.trust import init_keys, load_unit_signer, sign_package

SIZES = {"8k": 8 * 1024, "64k": 64 * 1024, "1m": 1024 * 1024}
PULLS = ("during", "after")  # when the recipients pull (BenchOptions.pull)
Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    amqp_url: str | None = None  # None: the embedded bus
    database_url: str | None = None  # None: SQLite (a PostgreSQL URL gets its own schema)
    packages: int = 2000
    connections: int = 32
    rate: float | None = None  # packages per second offered; None: flat out
    size: str = "8k"
    units: int = 16  # sender units, and as many recipient units (pull)
    workers: int = 1  # gateway processes (gateway serve --workers)
    stage_seconds: float = 1.0
    # Letters sent the same way before the measured run and left out of its figures: a
    # gateway just started opens its database connections and its server processes, and
    # fills its caches, during the first second of load.
    warmup: int = 0
    timeout: float = 600.0  # each load phase
    # A soak: the gateway's memory and open files sampled this often (seconds), reported
    # with the memory's slope and the latency's drift; None: no sampling.
    sample_every: float | None = None
    # When the recipients pull: "during" the submissions (a steady exchange), or "after" every
    # letter has been answered (the intake alone, then the recipients drain their inboxes).
    pull: str = "during"
    # The recipients list their inbox with the packages (include=package), or list it and then
    # fetch each copy on its own.
    fetch_each: bool = False
    # A gateway already running at this URL instead of one started for the run: configured as
    # this process's settings say (GATEWAY_HOME, GATEWAY_KEYS, GATEWAY_DATABASE_URL, ...), and
    # its main process on this machine, if known, for its CPU and memory.
    url: str | None = None
    pid: int | None = None


@dataclass
class _Tally:
    started: float = 0.0
    submit_latency: list[float] = field(default_factory=list)
    latency_at: list[tuple[float, float]] = field(default_factory=list)  # (since start, latency)
    cycle_latency: list[float] = field(default_factory=list)
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    last_accepted: float = 0.0
    acked: int = 0
    last_acked: float = 0.0
    first_acked: float | None = None
    drain_started: float | None = None  # when the recipients began, if after the intake
    intake_cpu: dict[str, float] | None = None  # CPU seconds used until then, by group
    sent_at: dict[str, float] = field(default_factory=dict)  # document key -> submit start

    def counts(self) -> tuple[int, int]:
        return self.accepted, sum(self.refused.values())


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class _Gateway:
    """The gateway a run measures: its address, its main process (None: not on this machine,
    or not known), and its database, where the run's tokens are issued."""

    url: str
    pid: int | None
    database_url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pull_units(directory: Directory, count: int) -> tuple[list[str], list[str]]:
    codes = [u.code for u in directory if u.active and str(u.delivery) == "pull"]
    if len(codes) < 2 * count:
        raise ValueError(f"the directory has {len(codes)} active pull units; {2 * count} needed")
    return codes[:count], codes[count : 2 * count]


def make_packages(
    keys: Path, directory: Directory, senders: list[str], recipients: list[str], n: int, size: int
) -> list[tuple[str, bytes]]:
    """``n`` signed letters of about ``size`` bytes, sender i -> recipient i, round robin."""
    signers = {code: load_unit_signer(keys, code) for code in senders}
    run = uuid.uuid4().hex[:6]

    def letter(i: int, scan: bytes) -> Package:
        return build_letter(
            unit(senders[i % len(senders)], directory),
            [unit(recipients[i % len(recipients)], directory)],
            f"Công văn thử tải số {i + 1}",
            number=f"{run}{i + 1}",
            attachments=[make_attachment("scan.pdf", scan)],
        )

    # What the letter costs without its scan, the signature and base64's growth aside.
    room = max(0, size - len(build_package(letter(0, b""))) - 2600) * 3 // 4
    out = []
    for i in range(n):
        package = letter(i, os.urandom(room))
        key, cert = signers[package.sender.organ_id]
        out.append((package.sender.organ_id, sign_package(build_package(package), key, cert)))
    return out


@contextlib.asynccontextmanager
async def started_gateway(folder: Path, options: BenchOptions, say: Say) -> AsyncIterator[_Gateway]:
    """A ``gateway serve`` process on a free port, stopped (and its scratch schema dropped)
    after the run."""
    from gateway.db.testing import create_scratch_schema, drop_scratch_schema

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "GATEWAY_HOME": str(folder / "var"),
        "GATEWAY_KEYS": str(folder / "keys"),
        "GATEWAY_API_RATE": "1000000",  # the per-token rate limit would be the benchmark
        "GATEWAY_API_BURST": "1000000",
    }
    database_url = f"sqlite+aiosqlite:///{folder / 'var' / 'ledger.db'}"
    if options.database_url:
        database_url = await create_scratch_schema(options.database_url)
        env["GATEWAY_DATABASE_URL"] = database_url
    if options.amqp_url:
        env["GATEWAY_AMQP_URL"] = options.amqp_url
        env["GATEWAY_BUS_NAMESPACE"] = "gwbench"  # reused: declaring 800 queues is slow
    port = _free_port()
    log = (folder / "gateway.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", "serve", "--port", str(port), "--grace", "5"),
            *("--workers", str(options.workers)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        say(f"starting the gateway (pid {process.pid}, log {folder / 'gateway.log'})")
        await wait_ready(url, process, folder / "gateway.log")
        yield _Gateway(url, process.pid, database_url)
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if options.database_url:
            await drop_scratch_schema(database_url)


@dataclass(frozen=True)
class _Target:
    """A gateway already running (``BenchOptions.url``), as this process's settings describe
    it: the folder of its development PKI (the senders sign with its unit keys), its
    directory, its broker and its database."""

    keys: Path
    directory: Directory
    amqp_url: str | None
    database_url: str  # the gateway's own, for tokens and, on PostgreSQL, the raw row stage


def target_settings() -> _Target:
    """The running gateway's configuration from this process's settings; ValueError when its
    unit keys are not here (a production gateway's units keep their own)."""
    from gateway.config import load_settings
    from gateway.db.engine import database_url
    from gateway.service.runtime import directory_file
    from gateway.trust.keyfiles import KeysLayout

    settings = load_settings()
    keys = settings.keys or settings.home / "keys"
    if not KeysLayout(keys).trust_pem.exists():
        raise ValueError(
            f"no development PKI in {keys}: the letters are signed with the units' keys of the "
            "gateway measured; set GATEWAY_HOME or GATEWAY_KEYS as that gateway has them"
        )
    amqp = settings.amqp_url.reveal() if settings.amqp_url else None
    return _Target(keys, load_directory(directory_file(settings)), amqp, database_url(settings))


async def check_ready(url: str) -> None:
    """RuntimeError unless the gateway at ``url`` answers ``/readyz`` with 200."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as r:
            status = r.status
    except aiohttp.ClientError as e:
        raise RuntimeError(f"the gateway at {url} does not answer: {e}") from e
    if status != 200:
        raise RuntimeError(f"the gateway at {url} is not ready (GET /readyz: {status})")


@contextlib.asynccontextmanager
async def run_tokens(database_url: str, codes: list[str]) -> AsyncIterator[dict[str, str]]:
    """A unit token for each of ``codes``, issued in the gateway's database for the run and
    revoked after it."""
    from gateway.db.engine import create_engine
    from gateway.service.tokens import Role, issue_token, revoke_tokens

    engine = create_engine(database_url)
    try:
        issued = [await issue_token(engine, c, Role.UNIT) for c in codes]
        try:
            yield {t.unit: t.token for t in issued}
        finally:
            for t in issued:
                await revoke_tokens(engine, token_id=t.token_id)
    finally:
        await engine.dispose()


async def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url`` answers /readyz with 200; RuntimeError with the log's end if the process
    exits first or it takes over 300 s."""
    deadline = time.monotonic() + 300
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the gateway exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.3)
    raise RuntimeError("the gateway was not ready within 300 s")


async def _submit_all(
    url: str,
    packages: list[tuple[str, bytes]],
    tokens: dict[str, str],
    options: BenchOptions,
    tally: _Tally,
) -> None:
    connector = aiohttp.TCPConnector(limit=options.connections)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(packages)):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            if options.rate:  # open loop: latency counts from the scheduled time
                start = tally.started + i / options.rate
                await asyncio.sleep(max(0.0, start - time.perf_counter()))
            sender, data = packages[i]
            headers = {
                "Authorization": f"Bearer {tokens[sender]}",
                "Content-Type": "application/xml",
            }
            try:
                async with session.post(f"{url}/v1/packages", data=data, headers=headers) as r:
                    answer = await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as e:
                tally.refused[type(e).__name__] += 1
                continue
            done = time.perf_counter()
            if r.status == 202:
                tally.accepted += 1
                tally.last_accepted = done
                tally.submit_latency.append(done - start)
                tally.latency_at.append((start - tally.started, done - start))
                tally.sent_at[answer["document_key"]] = start
            else:
                tally.refused[str(answer.get("code", r.status))] += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(options.connections)))


async def _receive_all(
    url: str,
    recipients: list[str],
    tokens: dict[str, str],
    expected: int,
    tally: _Tally,
    fetch_each: bool = False,
) -> None:
    """Each recipient's system: list its inbox with the packages (or list it, then fetch
    every copy of the page), then acknowledge the page's copies together (one POST
    /v1/inbox/ack)."""
    connector = aiohttp.TCPConnector(limit=len(recipients) * 2)
    # a long poll: an empty inbox answers when a copy arrives (or after 5 s)
    listing = f"{url}/v1/inbox?limit=100&wait=5" + ("" if fetch_each else "&include=package")

    async def one_unit(session: aiohttp.ClientSession, code: str) -> None:
        headers = {"Authorization": f"Bearer {tokens[code]}"}
        while tally.acked < expected:
            async with session.get(listing, headers=headers) as r:
                _check(r, code, "list")
                items = (await r.json())["items"]
            if not items:
                continue
            for item in items:
                if item.get("package") is not None:
                    b64decode(item["package"])  # the bytes, as the system would keep them
                    continue
                async with session.get(
                    f"{url}/v1/inbox/{item['delivery_id']}", headers=headers
                ) as r:
                    _check(r, code, "fetch")
                    await r.read()
            acks = [{"delivery_id": item["delivery_id"], "result": "done"} for item in items]
            async with session.post(
                f"{url}/v1/inbox/ack", json={"acks": acks}, headers=headers
            ) as r:
                _check(r, code, "acknowledge")
                refused = [a for a in (await r.json())["results"] if "problem" in a]
            if refused:
                raise RuntimeError(f"{code} could not acknowledge: {refused[0]['problem']}")
            now = time.perf_counter()
            if tally.first_acked is None:
                tally.first_acked = now
            tally.acked += len(items)
            tally.last_acked = now
            for item in items:
                sent = tally.sent_at.get(item["document_key"])
                if sent is not None:
                    tally.cycle_latency.append(now - sent)

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one_unit(session, code) for code in recipients))


async def _load(
    url: str,
    packages: list[tuple[str, bytes]],
    recipients: list[str],
    tokens: dict[str, str],
    options: BenchOptions,
    tally: _Tally,
    meter: CpuMeter | None = None,
) -> None:
    """Submit ``packages`` while the recipients list, fetch and acknowledge (or, pulling
    "after", once every letter has been answered, reading ``meter`` then), until every
    accepted letter is acknowledged."""
    async with asyncio.timeout(options.timeout):
        submitting = asyncio.create_task(_submit_all(url, packages, tokens, options, tally))
        if options.pull == "after":
            await submitting
            tally.drain_started = time.perf_counter()
            tally.intake_cpu = None if meter is None else meter.stop()
        receiving = asyncio.create_task(
            _receive_all(url, recipients, tokens, len(packages), tally, options.fetch_each)
        )
        await submitting
        await _all_received(receiving, tally)


def _warm_up_report(cold: _Tally) -> dict[str, Any]:
    """The letters of the warm-up, sent to the gateway just started: how many, and their
    submit latency."""
    return {
        "letters": cold.accepted + sum(cold.refused.values()),
        "submit_latency_ms": {f"p{q}": _ms(percentile(cold.submit_latency, q)) for q in (50, 99)},
    }


async def _all_received(receiving: asyncio.Task[None], tally: _Tally) -> None:
    """Until every accepted letter is acknowledged; a recipient's failure ends the run with
    its error rather than leaving it to wait for acknowledgements that will not come."""
    try:
        while tally.acked < tally.accepted:
            if receiving.done():
                receiving.result()
            await asyncio.sleep(0.05)
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving


def _check(response: aiohttp.ClientResponse, unit: str, what: str) -> None:
    """A recipient's request that fails stops the benchmark: a cycle is counted only when done."""
    if response.status != 200:
        raise RuntimeError(f"{unit} could not {what}: the gateway answered {response.status}")


async def _progress(tally: _Tally, total: int, say_progress: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - tally.started
        say_progress(
            f"{elapsed:6.1f} s  accepted {tally.accepted}/{total} "
            f"({tally.accepted / elapsed:,.0f}/s)  acknowledged {tally.acked} "
            f"({tally.acked / elapsed:,.0f}/s)  refused {sum(tally.refused.values())}"
        )


async def run_bench(
    options: BenchOptions, say: Say, say_progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run one benchmark and return its report (see :func:`format_report`)."""
    if options.size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}")
    if options.pull not in PULLS:
        raise ValueError(f"--pull must be one of {', '.join(PULLS)}")
    target = running = None  # the gateway at --url, as the settings describe it
    if options.url is not None:
        target = target_settings()
        running = _Gateway(options.url.rstrip("/"), options.pid, target.database_url)
        await check_ready(running.url)
        # its broker and database, for the raw stages and the report
        postgres = running.database_url if running.database_url.startswith("postgresql") else None
        options = replace(options, url=running.url, amqp_url=target.amqp_url, database_url=postgres)
    directory = load_directory() if target is None else target.directory
    senders, recipients = pull_units(directory, options.units)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        folder = Path(tmp)
        keys = folder / "keys"
        if target is None:
            say(f"development PKI for {len(directory)} units")
            init_keys(keys, directory)
        else:
            keys = target.keys
            say(f"the gateway at {options.url}, with its units' keys from {keys}")
        say(f"signing {options.warmup + options.packages} letters of about {options.size}")
        packages = await asyncio.to_thread(
            make_packages,
            keys,
            directory,
            senders,
            recipients,
            options.warmup + options.packages,
            SIZES[options.size],
        )
        warm_up, packages = packages[: options.warmup], packages[options.warmup :]
        sample = packages[0][1]
        _, cert = load_unit_signer(keys, packages[0][0])  # its sender
        say("measuring the raw stages on the same bytes")
        raw = [
            stages.parse_and_schema(sample, options.stage_seconds),
            stages.signature(sample, cert, options.stage_seconds),
        ]
        if options.amqp_url:
            raw.append(await stages.amqp_publish(options.amqp_url, sample, options.stage_seconds))
        else:
            raw.append(
                stages.sqlite_commit("publish (SQLite commit)", sample, options.stage_seconds)
            )
        if options.database_url:
            raw.append(await stages.postgres_commit(options.database_url, options.stage_seconds))
        else:
            raw.append(
                stages.sqlite_commit(
                    "ledger row (SQLite commit)", stages.ROW, options.stage_seconds
                )
            )
        request = await stages.http_request(sample, options.stage_seconds)
        gateway: contextlib.AbstractAsyncContextManager[_Gateway] = (
            started_gateway(folder, options, say)
            if running is None
            else contextlib.nullcontext(running)
        )
        async with gateway as g, run_tokens(g.database_url, senders + recipients) as tokens:
            url, pid = g.url, g.pid
            rss_before = _memory(pid, "VmRSS")
            cold = _Tally(started=time.perf_counter())
            if warm_up:
                say(f"warming up: {len(warm_up)} letters, not measured")
                await _load(url, warm_up, recipients, tokens, options, cold)
            groups: dict[str, Callable[[], list[int]]] = {
                "broker": lambda: pids_named("beam.smp") if options.amqp_url else [],
                "database": lambda: pids_named("postgres") if options.database_url else [],
                "benchmark client": lambda: [os.getpid()],  # it shares the machine
            }
            if pid is not None:  # first, as the gateway's figures always were
                groups = {"gateway": lambda: with_children(pid)} | groups
            meter = CpuMeter(groups)
            writer_before = await writer_counts(url)
            # The signed letters and the rest made so far stay out of the client's collector
            # while it measures: its full passes would count as the gateway's latency.
            freeze_start_up()
            tally = _Tally(started=time.perf_counter())
            meter.start()
            progress = asyncio.create_task(_progress(tally, len(packages), say_progress))
            soak = None
            if options.sample_every is not None and pid is not None:
                soak = Soak(pid, options.sample_every)
            sampling = None
            if soak is not None:
                sampling = asyncio.create_task(soak.run(tally.started, tally.counts))
            try:
                await _load(url, packages, recipients, tokens, options, tally, meter)
            finally:
                progress.cancel()
                if sampling is not None:
                    sampling.cancel()
                cpu = meter.stop()
                gc.unfreeze()
            writer_after = await writer_counts(url)
            writer = None
            if writer_before is not None and writer_after is not None:
                writer = _writer_report(writer_before, writer_after, tally)
            memory = {key: _memory(pid, key) for key in ("VmRSS", "VmHWM")}
    report = _report(options, tally, raw, request, cpu, rss_before, memory) | {
        "writer": writer,
        "warm_up": _warm_up_report(cold),
    }
    if soak is not None and soak.samples:
        report["soak"] = soak.report(tally.latency_at)
    return report


# The write path's metrics (docs/operations.md), summed over the workers by any of them.
WRITER_METRICS = (
    "gateway_writer_batches_total",
    "gateway_writer_jobs_total",
    "gateway_writer_lock_wait_seconds_sum",
    "gateway_writer_lock_held_seconds_sum",
)


async def metric_samples(url: str) -> dict[str, float]:
    """The gateway's /metrics, by sample (name and labels as written), on a new connection."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        response.raise_for_status()
        exposition = await response.text()
    lines = (line.rsplit(" ", 1) for line in exposition.splitlines() if line[:1] != "#")
    return {sample: float(value) for sample, value in lines}


async def writer_counts(url: str) -> dict[str, float] | None:
    """The write path's counts so far; None when /metrics does not answer with them (a gateway
    at --url behind a proxy that keeps it in)."""
    try:
        found = await metric_samples(url)
    except (aiohttp.ClientError, ValueError):
        return None
    return {name: found.get(name, 0.0) for name in WRITER_METRICS}


def _writer_report(
    before: dict[str, float], after: dict[str, float], tally: _Tally
) -> dict[str, float]:
    """The run's write transactions: how many requests each carried, and the share of the
    run the ledger's lock was held (by all the workers together) and waited for."""
    batches, jobs, waited, held = (after[n] - before[n] for n in WRITER_METRICS)
    seconds = max(1e-9, max(tally.last_acked, tally.last_accepted) - tally.started)
    return {
        "batches": batches,
        "jobs_per_batch": jobs / max(1.0, batches),
        "lock_held_share": held / seconds,
        "lock_wait_ms_per_batch": waited * 1000 / max(1.0, batches),
        "lock_held_ms_per_batch": held * 1000 / max(1.0, batches),
    }


def _memory(pid: int | None, key: str) -> int | None:
    """KiB of the gateway's processes together (every worker's peak, for VmHWM); None when
    its process is not known."""
    if pid is None:
        return None
    return sum(memory_kib(p).get(key, 0) for p in with_children(pid))


def _report(
    options: BenchOptions,
    tally: _Tally,
    raw: list[stages.Stage],
    request: stages.Stage,
    cpu: dict[str, float],
    rss_before: int | None,
    memory: dict[str, int | None],
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    accept_seconds = max(1e-9, tally.last_accepted - tally.started)
    cycle_seconds = max(1e-9, tally.last_acked - tally.started)
    accepted_rate = tally.accepted / accept_seconds
    cycle_rate = tally.acked / cycle_seconds
    drain_rate = None  # copies acknowledged a second once the recipients began after the intake
    if tally.drain_started is not None:
        drain_rate = tally.acked / max(1e-9, tally.last_acked - tally.drain_started)
    limit = stages.stage_sum_limit(raw, cores)
    parse, verify, _publish, row = raw  # the recipients pull: their copies are not published
    requests = 4 if options.fetch_each else 3  # a full cycle's, the fetch in the listing or not
    floor = stages.cycle_floor([parse, verify, row], request, cores, requests)
    per = max(1, tally.accepted)
    return {
        "machine": f"{platform.machine()}, {cores} cores, Python {platform.python_version()}",
        "setup": {
            "bus": "rabbitmq" if options.amqp_url else "embedded",
            "database": "postgresql" if options.database_url else "sqlite",
            "packages": options.packages,
            "size": options.size,
            "connections": options.connections,
            "rate": options.rate,
            "units": options.units,
            "workers": None if options.url else options.workers,
            "url": options.url,
            "pull": options.pull,
            "fetch_each": options.fetch_each,
        },
        "accepted": tally.accepted,
        "refused": dict(tally.refused),
        "accepted_per_s": accepted_rate,
        "cycles": tally.acked,
        "cycles_per_s": cycle_rate,
        "submit_latency_ms": {
            f"p{q}": _ms(percentile(tally.submit_latency, q)) for q in (50, 95, 99)
        },
        "cycle_latency_ms": {
            f"p{q}": _ms(percentile(tally.cycle_latency, q)) for q in (50, 95, 99)
        },
        "intake_s": accept_seconds,
        "first_ack_s": None if tally.first_acked is None else tally.first_acked - tally.started,
        "drain_per_s": drain_rate,
        "cpu_ms_per_package": _per_package(cpu, per),
        "intake_cpu_ms_per_package": tally.intake_cpu and _per_package(tally.intake_cpu, per),
        "gateway_rss_mib": None
        if rss_before is None
        else {
            "before": rss_before / 1024,
            "after": (memory["VmRSS"] or 0) / 1024,
            "peak": (memory["VmHWM"] or 0) / 1024,
        },
        "stages_us": {s.name: s.micros for s in raw},
        "stage_sum_limit_per_s": limit,
        "ratio_to_limit": accepted_rate / limit,
        "http_request_us": request.micros,
        "cycle_requests": requests,
        "cycle_floor_per_s": floor,
        "cycles_ratio_to_floor": cycle_rate / floor,
        "cpu_limit": _cpu_limit(
            tally.intake_cpu or cpu, per, cores, accepted_rate, sum(s.seconds for s in raw)
        ),
    }


def _cpu_limit(
    cpu: dict[str, float], packages: int, cores: int, accepted_rate: float, stages: float
) -> dict[str, float] | None:
    """What the run's own cost allowed: the CPU an accepted letter took in all (the gateway,
    the broker, the database and this client; the intake's alone when the recipients pulled
    after it), the letters a second the cores carry at that cost, the share of it accepted
    (how busy the run kept them) and the raw stages' share of the cost. The ratio to the
    stage-sum limit is the product of the two shares. None without the gateway's CPU."""
    if "gateway" not in cpu:
        return None
    seconds = sum(cpu.values()) / packages
    per_s = cores / seconds
    return {
        "ms_per_package": seconds * 1000,
        "cores": cores,
        "per_s": per_s,
        "busy_share": accepted_rate / per_s,
        "stage_share": stages / seconds,
    }


def _cpu_limit_lines(limit: dict[str, float] | None) -> list[str]:
    if limit is None:
        return ["CPU limit: not measured (the gateway's CPU is not known: --pid)"]
    return [
        f"CPU limit: {limit['ms_per_package']:.2f} ms a letter in all, so {limit['cores']} "
        f"cores carry {limit['per_s']:,.0f}/s; accepted/s is {limit['busy_share']:.0%} of it, "
        f"and the raw stages are {limit['stage_share']:.0%} of the cost"
    ]


def _per_package(cpu: dict[str, float], packages: int) -> dict[str, float]:
    """CPU seconds by group as milliseconds a package."""
    return {name: used * 1000 / packages for name, used in cpu.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _percentiles(milliseconds: dict[str, float | None]) -> str:
    """``p50 1.2  p99 3.4``, with ``-`` for a percentile of no values."""
    return "  ".join(f"{q} {'-' if v is None else f'{v:,.1f}'}" for q, v in milliseconds.items())


def _warm_up_lines(warm: dict[str, Any] | None, started: bool) -> list[str]:
    if not warm or not warm["letters"]:
        return []
    return [
        f"warm-up (not measured): {warm['letters']} letters first"
        + (", from the gateway's start" if started else "")
        + f"; their submit latency ms: {_percentiles(warm['submit_latency_ms'])}"
    ]


def _cycle(setup: dict[str, Any]) -> str:
    """A full cycle's requests, as the recipients made them."""
    if setup.get("fetch_each"):
        return "submit, list, fetch, ack"
    return "submit, list with the packages, ack"


def _drain_lines(drain: float | None) -> list[str]:
    if drain is None:
        return []
    return [f"drain (recipients pulling after the intake): {drain:,.0f} copies/s"]


def _intake_cpu_lines(cpu: dict[str, float] | None) -> list[str]:
    if cpu is None:
        return []
    return ["  of which the intake: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())]


def _memory_lines(rss: dict[str, float] | None) -> list[str]:
    if rss is None:
        return ["gateway RSS MiB: not measured (its process is not known: --pid)"]
    return ["gateway RSS MiB: " + ", ".join(f"{k} {v:,.0f}" for k, v in rss.items())]


def format_report(report: dict[str, Any]) -> str:
    s = report["setup"]
    lines = [
        f"machine: {report['machine']}",
        f"setup: bus {s['bus']}, database {s['database']}, {s['packages']} letters of "
        f"{s['size']}, {s['connections']} connections, "
        + (f"offered {s['rate']:,.0f}/s" if s["rate"] else "flat out")
        + f", {s['units']} senders -> {s['units']} pull recipients "
        + ("pulling after the intake" if s.get("pull") == "after" else "pulling meanwhile")
        + (
            f", the gateway at {s['url']}"
            if s.get("url")
            else f", {s['workers']} gateway process(es)"
        ),
        *_warm_up_lines(report.get("warm_up"), started=not s.get("url")),
        f"accepted: {report['accepted']} ({report['accepted_per_s']:,.0f}/s)"
        + (f", refused {report['refused']}" if report["refused"] else ""),
        f"full cycles ({_cycle(s)}): {report['cycles']} ({report['cycles_per_s']:,.0f}/s)",
        *_drain_lines(report.get("drain_per_s")),
        f"submit latency ms: {_percentiles(report['submit_latency_ms'])}",
        f"cycle latency ms:  {_percentiles(report['cycle_latency_ms'])}",
        "CPU ms per accepted package: "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["cpu_ms_per_package"].items()),
        *_intake_cpu_lines(report.get("intake_cpu_ms_per_package")),
        *_memory_lines(report["gateway_rss_mib"]),
        "raw stages (CPU µs per package, client + server): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in report["stages_us"].items()),
        f"stage-sum limit: {report['stage_sum_limit_per_s']:,.0f}/s; "
        f"accepted/s is {report['ratio_to_limit']:.0%} of it",
        f"HTTP request (aiohttp, client + server): {report['http_request_us']:,.0f} µs; "
        f"cycle floor ({report['cycle_requests']} requests, parse + XSD, verify, ledger row): "
        f"{report['cycle_floor_per_s']:,.0f}/s; cycles/s is "
        f"{report['cycles_ratio_to_floor']:.0%} of it",
        *_cpu_limit_lines(report.get("cpu_limit")),
    ]
    w = report.get("writer")
    if w is None:
        lines.append("write path: not measured (the gateway's /metrics did not answer)")
    else:
        lines.append(
            f"write path: {w['batches']:,.0f} transactions of {w['jobs_per_batch']:.1f} "
            f"requests; ledger lock held {w['lock_held_share']:.0%} of the run, "
            f"{w['lock_held_ms_per_batch']:.1f} ms a transaction after waiting "
            f"{w['lock_wait_ms_per_batch']:.1f} ms"
        )
    if "soak" in report:
        lines += format_soak(report["soak"])
    return "\n".join(lines)
