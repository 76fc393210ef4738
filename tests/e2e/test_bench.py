"""``gateway bench`` run for real on a small load: a gateway process of its own, letters over
HTTP, every copy fetched and acknowledged, and a report with the raw stages beside it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.bench.procstat import cpu_seconds, memory_kib
from gateway.bench.run import _all_received, _free_port, _Tally, percentile, wait_ready


def settings_free() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def bench(
    tmp_path: Path, *args: str, **settings: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``gateway bench ARGS`` in a process of its own, with ``settings`` instead of the
    caller's; its output and its JSON report."""
    report_file = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", *args, "--json", str(report_file)],
        capture_output=True, text=True, timeout=300, env=settings_free() | settings,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run, json.loads(report_file.read_text())


def test_bench_submits_receives_and_reports(tmp_path: Path) -> None:
    run, report = bench(
        tmp_path, "--packages", "24", "--warmup", "5", "--units", "3", "--connections", "4",
        "--stage-seconds", "0.1",
    )  # fmt: skip
    # the warm-up's letters went through the gateway first and are reported apart
    assert report["warm_up"]["letters"] == 5
    assert report["warm_up"]["submit_latency_ms"]["p50"] > 0
    assert "warm-up (not measured): 5 letters" in run.stdout
    assert report["accepted"] == 24 and report["refused"] == {}
    assert report["setup"]["pull"] == "during" and report["drain_per_s"] is None
    assert report["intake_cpu_ms_per_package"] is None
    assert report["cycles"] == 24
    assert report["accepted_per_s"] > 0 and report["cycles_per_s"] > 0
    assert report["submit_latency_ms"]["p50"] <= report["submit_latency_ms"]["p99"]
    assert report["cpu_ms_per_package"]["gateway"] > 0
    assert report["gateway_rss_mib"]["peak"] >= report["gateway_rss_mib"]["before"] > 0
    assert set(report["stages_us"]) == {
        "parse + XSD (lxml)",
        "verify (signxml)",
        "publish (SQLite commit)",
        "ledger row (SQLite commit)",
    }
    assert 0 < report["ratio_to_limit"] < 1
    # a bare request costs something, and less than the gateway's own work for a letter
    assert 0 < report["http_request_us"] < report["cpu_ms_per_package"]["gateway"] * 1000
    # the floor: three requests (the listing carries the packages) and the package's stages but
    # the bus's
    stage = report["stages_us"]
    assert report["cycle_requests"] == 3
    cycle_us = 3 * report["http_request_us"] + sum(
        stage[name]
        for name in ("parse + XSD (lxml)", "verify (signxml)", "ledger row (SQLite commit)")
    )
    assert report["cycle_floor_per_s"] == pytest.approx(os.cpu_count() * 1e6 / cycle_us)
    assert 0 < report["cycles_ratio_to_floor"] < 1
    # the cores at the run's own cost a letter, of which the stage-sum's ratio is the product
    # of how busy the run kept them and the stages' share of the cost
    limit = report["cpu_limit"]
    assert limit["ms_per_package"] == pytest.approx(sum(report["cpu_ms_per_package"].values()))
    assert limit["per_s"] == pytest.approx(os.cpu_count() * 1000 / limit["ms_per_package"])
    assert limit["busy_share"] == pytest.approx(report["accepted_per_s"] / limit["per_s"])
    assert limit["stage_share"] == pytest.approx(
        sum(stage.values()) / 1000 / limit["ms_per_package"]
    )
    assert report["ratio_to_limit"] == pytest.approx(limit["busy_share"] * limit["stage_share"])
    assert f"cores carry {limit['per_s']:,.0f}/s" in run.stdout
    writer = report["writer"]  # each measured letter's submission and acknowledgement (and a
    # sweep of the inboxes now and then), without the warm-up's ten
    jobs = writer["jobs_per_batch"] * writer["batches"]
    assert writer["batches"] >= 1 and 48 <= round(jobs) < 48 + 10
    assert 0 < writer["lock_held_share"] < 1
    assert "full cycles (submit, list with the packages, ack): 24" in run.stdout
    assert "stage-sum limit" in run.stdout and "accepted: 24" in run.stdout
    assert "write path:" in run.stdout and "cycle floor" in run.stdout


def test_recipients_pulling_after_the_intake_leave_it_measured_alone(tmp_path: Path) -> None:
    run, report = bench(
        tmp_path, "--packages", "30", "--warmup", "0", "--units", "3", "--connections", "4",
        "--stage-seconds", "0.05", "--pull", "after", "--fetch-each",
    )  # fmt: skip
    assert report["setup"]["pull"] == "after" and report["setup"]["fetch_each"]
    assert "full cycles (submit, list, fetch, ack): 30" in run.stdout
    assert report["cycle_requests"] == 4 and "cycle floor (4 requests" in run.stdout
    assert report["accepted"] == 30 == report["cycles"]
    # no copy was acknowledged before the last letter was answered
    assert report["first_ack_s"] >= report["intake_s"] > 0
    assert report["drain_per_s"] > 0
    intake, whole = report["intake_cpu_ms_per_package"], report["cpu_ms_per_package"]
    assert 0 < intake["gateway"] < whole["gateway"]  # the drain's work came after it
    assert report["cpu_limit"]["ms_per_package"] == pytest.approx(sum(intake.values()))
    assert "pulling after the intake" in run.stdout and "drain (recipients" in run.stdout


def test_a_soak_cannot_pull_after_the_intake() -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    result = CliRunner().invoke(
        main, ["bench", "--pull", "after", "--rate", "5", "--duration", "5"]
    )
    assert result.exit_code == 2 and "not with --pull after" in result.output


def test_percentiles_pick_the_ranked_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0  # rank round(0.5 * 99) = 50, counted from 0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


def test_procstat_reads_this_process() -> None:
    sum(i * i for i in range(200_000))  # some CPU to see
    assert cpu_seconds(os.getpid()) > 0
    memory = memory_kib(os.getpid())
    assert memory["VmHWM"] >= memory["VmRSS"] > 0
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process


def test_embedded_and_a_broker_together_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    result = CliRunner().invoke(main, ["bench", "--embedded", "--amqp", "amqp://x/"])
    assert result.exit_code == 2
    assert "--embedded cannot go with --amqp or --db" in result.output


def test_a_soak_samples_memory_and_open_files_and_reports_drift(tmp_path: Path) -> None:
    run, report = bench(
        tmp_path, "--rate", "10", "--duration", "4", "--units", "2", "--stage-seconds", "0.05"
    )
    assert report["accepted"] == 40 == report["cycles"]  # rate x duration letters
    assert report["warm_up"]["letters"] == 10  # by default, a second's worth at the rate
    soak = report["soak"]
    assert len(soak["samples"]) >= 3
    assert [s["at"] for s in soak["samples"]] == sorted(s["at"] for s in soak["samples"])
    assert all(s["rss_mib"] > 0 and s["open_files"] > 0 for s in soak["samples"])
    assert isinstance(soak["rss_mib_per_min_after_warm_up"], float)
    assert soak["submit_p50_ms"]["first_fifth"] > 0 and soak["submit_p50_ms"]["last_fifth"] > 0
    assert "MiB/min after warm-up" in run.stdout


def test_a_soak_needs_a_rate() -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    result = CliRunner().invoke(main, ["bench", "--duration", "60"])
    assert result.exit_code == 2 and "--duration needs --rate" in result.output


def test_the_slope_is_least_squares() -> None:
    from gateway.bench.soak import slope

    assert slope([(0, 100.0), (60, 101.0), (120, 102.0)]) * 60 == 1.0  # 1 MiB a minute
    assert slope([(0, 5.0)]) == 0.0


async def test_a_recipient_that_fails_ends_the_run_with_its_error() -> None:
    tally = _Tally(accepted=5, acked=2)

    async def recipient() -> None:
        raise RuntimeError("000.00.00.G01 could not list: the gateway answered 503")

    receiving = asyncio.create_task(recipient())
    with pytest.raises(RuntimeError, match="could not list"):
        await asyncio.wait_for(_all_received(receiving, tally), 5)


@pytest.fixture
def running_gateway(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """``gateway serve`` with no configuration but its home (and a per-token rate limit that
    lets a benchmark through), as an operator would run one for trials: URL, pid, home."""
    home, port = tmp_path / "trial", _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env=settings_free() | {
                "GATEWAY_HOME": str(home),
                "GATEWAY_API_RATE": "100000",
                "GATEWAY_API_BURST": "100000",
            },
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_ready(url, process, log))  # as the bench waits for its own
        yield url, process.pid, home
    finally:
        process.terminate()
        process.wait(30)


def test_bench_measures_a_gateway_already_running(
    tmp_path: Path, running_gateway: tuple[str, int, Path]
) -> None:
    url, pid, home = running_gateway
    run, report = bench(
        tmp_path, "--url", url, "--pid", str(pid), "--packages", "20", "--warmup", "4",
        "--units", "3", "--connections", "4", "--stage-seconds", "0.05",
        GATEWAY_HOME=str(home),
    )  # fmt: skip
    assert report["accepted"] == 20 == report["cycles"] and report["refused"] == {}
    assert report["setup"]["url"] == url and report["setup"]["workers"] is None
    assert f"the gateway at {url}" in run.stdout
    assert report["cpu_ms_per_package"]["gateway"] > 0  # its process, named by --pid
    assert report["gateway_rss_mib"]["peak"] > 0
    with sqlite3.connect(home / "ledger.db") as db:
        # the letters are the gateway's own now, in its ledger
        (submitted,) = db.execute(
            "SELECT count(*) FROM ledger_entry WHERE type = 'submitted'"
        ).fetchone()
        tokens = db.execute("SELECT unit, revoked_at FROM gw_token").fetchall()
    assert submitted == 24
    # a token for each of the three senders and three recipients, revoked after the run
    assert len(tokens) == 6 and all(revoked for _, revoked in tokens)

    # without its process the run measures the rest, and says so
    run, report = bench(
        tmp_path, "--url", url, "--packages", "5", "--warmup", "0", "--units", "3",
        "--stage-seconds", "0.05", GATEWAY_HOME=str(home),
    )  # fmt: skip
    assert report["accepted"] == 5 and "gateway" not in report["cpu_ms_per_package"]
    assert report["gateway_rss_mib"] is None and "not measured" in run.stdout
    assert report["cpu_limit"] is None and "CPU limit: not measured" in run.stdout


def test_bench_of_a_running_gateway_needs_its_keys_and_its_answer(
    tmp_path: Path, running_gateway: tuple[str, int, Path]
) -> None:
    url, _, home = running_gateway
    no_keys = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "--url", url],
        capture_output=True, text=True, timeout=60,
        env=settings_free() | {"GATEWAY_HOME": str(tmp_path / "elsewhere")},
    )  # fmt: skip
    assert no_keys.returncode != 0 and "no development PKI" in no_keys.stderr
    silent = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "--url", f"http://127.0.0.1:{_free_port()}"],
        capture_output=True, text=True, timeout=60,
        env=settings_free() | {"GATEWAY_HOME": str(home)},
    )  # fmt: skip
    assert silent.returncode != 0 and "does not answer" in silent.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://x/", "--db", "postgresql+asyncpg://y/z"], "--url measures a gateway"),
        (["--url", "http://x/", "--workers", "2"], "--url measures a gateway"),
        (["--pid", "7"], "--pid names the process"),
        (["--url", "http://x/", "--rate", "5", "--duration", "5"], "name its process with --pid"),
    ],
)
def test_bench_options_that_do_not_go_together(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2 and message in result.output


async def test_the_write_path_is_left_out_when_metrics_do_not_answer() -> None:
    """A gateway at --url behind a proxy that keeps /metrics in: the run reports the rest."""
    from aiohttp import web

    from gateway.bench.run import format_report, writer_counts

    async def kept_in(_: web.Request) -> web.Response:
        return web.Response(status=403, text="<h1>no</h1>")

    app = web.Application()
    app.router.add_get("/metrics", kept_in)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert await writer_counts(f"http://127.0.0.1:{runner.addresses[0][1]}") is None
    finally:
        await runner.cleanup()
    report = {
        "machine": "x86_64, 2 cores",
        "setup": {"bus": "rabbitmq", "database": "postgresql", "packages": 1, "size": "8k",
                  "connections": 1, "rate": None, "units": 1, "url": "http://trial:8080"},
        "accepted": 1, "refused": {}, "accepted_per_s": 1.0, "cycles": 1, "cycles_per_s": 1.0,
        "submit_latency_ms": {"p50": 1.0}, "cycle_latency_ms": {"p50": 2.0},
        "cpu_ms_per_package": {"benchmark client": 0.3}, "gateway_rss_mib": None,
        "stages_us": {"verify (signxml)": 500.0}, "stage_sum_limit_per_s": 4000.0,
        "ratio_to_limit": 0.1, "http_request_us": 100.0, "cycle_requests": 3,
        "cycle_floor_per_s": 3000.0, "cycles_ratio_to_floor": 0.1, "writer": None,
    }  # fmt: skip
    text = format_report(report)
    assert "write path: not measured" in text and "the gateway at http://trial:8080" in text
    assert "gateway RSS MiB: not measured" in text
