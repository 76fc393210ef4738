"""``gateway serve --workers 3`` on RabbitMQ and PostgreSQL: three processes behind one port
take letters at the same time, and the ledger they write together is one log that verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from apicheck import Recorder
from gatewaystack import POLICY, PULL, SENDER, directory_csv

from gateway.bench.procstat import with_children
from gateway.bench.run import metric_samples, wait_ready
from gateway.bus import AmqpBus, ClaimStore
from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.db.engine import create_engine
from gateway.db.testing import create_scratch_schema, drop_scratch_schema
from gateway.directory import load_directory
from gateway.envelope import Organization
from gateway.ledger import EventType, Query, SqlLedger
from gateway.ledger.checkpoint import NoteVerifier
from gateway.ledger.keys import load_gateway_public_key
from gateway.service.tokens import Role, issue_token
from gateway.trust import init_keys

ORIGIN = "gateway.test/workers"
LETTERS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
@pytest.mark.amqp
async def test_three_workers_write_one_ledger(
    tmp_path: Path, amqp_url: str, database_url: str, api_responses: Recorder
) -> None:
    directory_file = tmp_path / "units.csv"
    directory_file.write_text(directory_csv("http://127.0.0.1:9/none"), encoding="utf-8")
    directory = load_directory(directory_file)
    keys = tmp_path / "keys"
    init_keys(keys, directory)
    scoped = await create_scratch_schema(database_url)
    namespace = f"wk{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | {
        "GATEWAY_HOME": str(tmp_path / "var"),
        "GATEWAY_KEYS": str(keys),
        "GATEWAY_DIRECTORY": str(directory_file),
        "GATEWAY_DATABASE_URL": scoped,
        "GATEWAY_AMQP_URL": amqp_url,
        "GATEWAY_BUS_NAMESPACE": namespace,
        "GATEWAY_API_RATE": "100000",
        "GATEWAY_API_BURST": "100000",
        "GATEWAY_LEDGER_ORIGIN": ORIGIN,
        "GATEWAY_LEDGER_CHECKPOINT_ENTRIES": "7",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--workers", "3"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    api_responses.watch(url)
    engine = create_engine(scoped)
    try:
        await wait_ready(url, process, tmp_path / "serve.log")
        assert len(with_children(process.pid)) == 4  # the parent and three workers
        token = (await issue_token(engine, SENDER, Role.UNIT)).token
        letters = [
            sign_as_unit(
                build_letter(
                    unit(SENDER, directory),
                    [Organization(PULL, "Sở Tài chính")],
                    f"Về việc thứ {n}",
                    number=str(500 + n),
                ),
                keys,
            )
            for n in range(LETTERS)
        ]

        async def submit(data: bytes) -> int:
            async with GatewayClient(url, token) as gw:  # a connection of its own each
                return (await gw.submit(data)).status

        statuses = await asyncio.gather(*(submit(d) for d in letters))
        assert statuses == [202] * LETTERS
        # Whichever worker answers a scrape, it counts what all of them did.
        for _ in range(6):
            samples = await metric_samples(url)
            assert samples['gateway_packages_total{outcome="accepted"}'] == LETTERS
            assert samples["gateway_writer_jobs_total"] >= LETTERS
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 60)
        log.close()
    try:
        assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
        ledger = SqlLedger(engine, origin=ORIGIN)
        report = await ledger.verify(NoteVerifier(ORIGIN, load_gateway_public_key(keys)))
        assert report.ok, report.finding
        assert report.entries == 2 * LETTERS  # submitted and queued, no gap, no twin
        assert report.checkpoints >= 2 * LETTERS // 7
        page = await ledger.query(Query(events=(EventType.SUBMITTED,)), limit=1000)
        assert len({e.event.document for e in page.entries}) == LETTERS
    finally:
        await engine.dispose()
        await drop_scratch_schema(scoped)
        cleaner = AmqpBus(
            amqp_url, namespace=namespace, claims=ClaimStore(tmp_path / "c"), policy=POLICY
        )
        await cleaner.destroy(u.code for u in directory)
