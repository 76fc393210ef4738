"""`gateway serve` as a user runs it: no configuration on a fresh folder, a letter accepted,
a clean stop on SIGTERM, and the letter still there after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.client import GatewayClient, build_letter, sign_as_unit, unit

SENDER, RECIPIENT = "000.00.00.H07", "000.00.01.H07"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Path, int, list[subprocess.Popen[str]]]]:
    started: list[subprocess.Popen[str]] = []
    yield tmp_path, free_port(), started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(folder: Path, port: int, started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    with (folder / f"serve-{len(started)}.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--grace", "5"],
            cwd=folder,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    started.append(process)
    return process


def output(folder: Path, index: int) -> str:
    return (folder / f"serve-{index}.log").read_text()


async def wait_ready(port: int, process: subprocess.Popen[str]) -> None:
    for _ in range(600):
        assert process.poll() is None, "gateway serve stopped"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as response,
            ):
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("gateway serve did not become ready in 60 s")


async def test_serve_without_configuration_keeps_what_it_accepted_across_a_restart(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    folder, port, started = serve
    process = start(folder, port, started)
    await wait_ready(port, process)
    assert (folder / "var" / "keys" / "trust.pem").exists()  # a development PKI was made
    assert (folder / "var" / "ledger.db").exists() and (folder / "var" / "bus.db").exists()

    tokens = {}
    for code in (SENDER, RECIPIENT):
        issued = gateway("tokens", "issue", "--unit", code, cwd=folder)
        assert issued.returncode == 0, issued.stderr
        tokens[code] = issued.stdout.strip()
    letter = build_letter(unit(SENDER), [unit(RECIPIENT)], "Giấy mời họp", number="7")
    data = sign_as_unit(letter, folder / "var" / "keys")
    url = f"http://127.0.0.1:{port}"
    async with GatewayClient(url, tokens[SENDER]) as gw:
        key = (await gw.submit(data)).document_key

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "creating a development PKI" in output(folder, 0)

    process = start(folder, port, started)
    await wait_ready(port, process)
    async with GatewayClient(url, tokens[RECIPIENT]) as gw:
        for _ in range(100):
            items = (await gw.inbox())["items"]
            if items:
                break
            await asyncio.sleep(0.1)
        (item,) = items
        assert item["document_key"] == key
        assert (await gw.fetch(item["delivery_id"])).data == data
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
