"""``gateway bench`` run for real on a small load: a gateway process of its own, letters over
HTTP, every copy fetched and acknowledged, and a report with the raw stages beside it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.bench.procstat import cpu_seconds, memory_kib
from gateway.bench.run import _all_received, _Tally, percentile


def bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``gateway bench ARGS`` in a process of its own, without the caller's settings; its
    output and its JSON report."""
    report_file = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", *args, "--json", str(report_file)],
        capture_output=True, text=True, timeout=300, env=env,
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
