"""`gateway serve` as a user runs it: no configuration on a fresh folder, a letter accepted,
a clean stop on SIGTERM, the letter still there after a restart, and the national-axis
façade mounted when it is enabled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from apicheck import Recorder
from vxpsdk import SdkClient

from gateway.client import ApiError, GatewayClient, build_letter, sign_as_unit, unit

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
def serve(
    tmp_path: Path, api_responses: Recorder
) -> Iterator[tuple[Path, int, list[subprocess.Popen[str]]]]:
    started: list[subprocess.Popen[str]] = []
    port = free_port()
    api_responses.watch(f"http://127.0.0.1:{port}")
    yield tmp_path, port, started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(
    folder: Path,
    port: int,
    started: list[subprocess.Popen[str]],
    *args: str,
    **env: str,
) -> subprocess.Popen[str]:
    with (folder / f"serve-{len(started)}.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--grace", "5", *args],
            cwd=folder,
            env=clean_env() | env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as in a terminal
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


async def test_two_embedded_workers_start_together_and_stop_on_ctrl_c(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    """Both workers bind the new ledger at once without finding it locked, and Ctrl-C in a
    terminal (SIGINT to the whole process group, the parent then stopping its workers too)
    stops them cleanly."""
    folder, port, started = serve
    process = start(folder, port, started, "--workers", "2")
    await wait_ready(port, process)
    issued = gateway("tokens", "issue", "--unit", SENDER, cwd=folder)
    assert issued.returncode == 0, issued.stderr
    letter = build_letter(unit(SENDER), [unit(RECIPIENT)], "Giấy mời họp", number="8")
    data = sign_as_unit(letter, folder / "var" / "keys")
    for _ in range(8):  # on connections of their own: the kernel spreads them over both
        async with GatewayClient(f"http://127.0.0.1:{port}", issued.stdout.strip()) as gw:
            assert (await gw.submit(data)).status in (200, 202)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 0
    log = output(folder, 0)
    assert log.count("gateway ready") == 2
    assert "not ready" not in log and "locked" not in log
    assert "Traceback" not in log and "failed" not in log, log[-3000:]


async def test_an_operators_day_without_a_restart(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    """No configuration: a unit added to var/directory.csv, given a key and a token, sends a
    letter; its certificate revoked and SIGHUP sent, its letters are refused; each step is in
    the ledger with who did it; the bus is not touched behind the gateway's back."""
    folder, port, started = serve
    process = start(folder, port, started)
    await wait_ready(port, process)
    assert (folder / "var" / "directory.csv").exists()
    new = "000.00.90.H07"  # not in the sample province

    def ok(*args: str) -> str:
        done = gateway(*args, cwd=folder)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    ok("units", "add", new, "--name", "Sở Du lịch", "--parent", SENDER, "--level", "2",
       "--delivery", "pull")  # fmt: skip
    ok("keys", "issue", "--keys", "var/keys", new)
    token = ok("tokens", "issue", "--unit", new)
    auditor = ok("tokens", "issue", "--unit", SENDER, "--role", "auditor")
    data = sign_as_unit(build_letter(unit(new), [unit(RECIPIENT)], "Thư mời"), folder / "var/keys")
    url = f"http://127.0.0.1:{port}"
    async with GatewayClient(url, token) as gw:
        for _ in range(100):  # the gateway sees the changed file within its watch interval
            try:
                await gw.submit(data)
                break
            except ApiError as e:
                assert e.code in ("sender_unknown", "unknown_recipient"), e
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new unit was not taken up")

    ok("keys", "revoke", "--keys", "var/keys", "--reason", "key-compromise", new)
    process.send_signal(signal.SIGHUP)
    again = sign_as_unit(
        build_letter(unit(new), [unit(RECIPIENT)], "Thư mời 2"), folder / "var/keys"
    )
    async with GatewayClient(url, token) as gw:
        for _ in range(50):
            try:
                await gw.submit(again)
            except ApiError as e:
                assert e.code == "cert_revoked"
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the revoked certificate was still accepted")

    behind = gateway("bus", "redrive", new, "--all", cwd=folder)
    assert behind.returncode == 2 and "a gateway is running" in behind.stderr

    async with GatewayClient(url, auditor) as gw:
        for _ in range(50):
            events = (await gw.entries(event="operator", limit="100"))["entries"]
            if any(e["details"].get("trigger") == "signal" for e in events):
                break
            await asyncio.sleep(0.1)
    actions = {e["code"]: e["details"] for e in events}
    assert {"unit_add", "key_issue", "token_issue", "key_revoke", "reload"} <= set(actions)
    for action in ("unit_add", "key_issue", "token_issue", "key_revoke"):
        assert actions[action]["actor"].startswith("cli:"), action
    assert actions["key_revoke"]["reason"] == "key-compromise"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


async def test_a_client_that_trickles_its_headers_is_disconnected(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    folder, port, started = serve
    process = start(folder, port, started, GATEWAY_API_HEADER_TIMEOUT="1")
    await wait_ready(port, process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
    opened = asyncio.get_running_loop().time()
    with contextlib.suppress(ConnectionError):
        while not reader.at_eof() and asyncio.get_running_loop().time() - opened < 10:
            writer.write(b"X-Slow: 1\r\n")  # a header line every 0.2 s, never the end
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1024), 0.2)
    assert asyncio.get_running_loop().time() - opened < 3
    writer.close()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        assert response.status == 200  # a client that sends its request is served


async def test_one_address_holds_so_many_connections(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    """Many connections from one address that send nothing: those past the cap are closed at
    once (not after the header timeout), counted and logged; another address is served, and
    the address is served again once its connections close."""
    folder, port, started = serve
    process = start(folder, port, started, GATEWAY_API_CONNECTIONS_PER_ADDRESS="20")
    await wait_ready(port, process)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    refused = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
    for reader, _ in refused:  # closed by the gateway, well before the 30 s header timeout
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    for reader, _ in held:  # still open
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), timeout=0.05)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as other,
        other.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert "gateway_connections_refused_total 30.0" in await response.text()
    for _, writer in held + refused:
        writer.close()
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # the gateway sees the closes within a moment
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("127.0.0.1 was not served again")
    assert output(folder, 0).count("connection(s) from 127.0.0.1") == 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


async def test_serve_mounts_the_national_axis_facade_when_enabled(
    serve: tuple[Path, int, list[subprocess.Popen[str]]],
) -> None:
    folder, port, started = serve
    process = start(folder, port, started, GATEWAY_VXP_ENABLED="true")
    await wait_ready(port, process)
    issued = gateway("tokens", "issue", "--unit", RECIPIENT, "--vxp", cwd=folder)
    assert issued.returncode == 0, issued.stderr
    values = dict(line.split("=", 1) for line in issued.stdout.splitlines())
    assert values["systemId"] == RECIPIENT
    async with aiohttp.ClientSession() as session:
        sdk = SdkClient(f"http://127.0.0.1:{port}/vxp", RECIPIENT, values["secret"], session)
        agencies = await sdk.call("getAgenciesList")
        assert agencies["status"] == "OK" and len(agencies["data"]) == 809
        assert (await sdk.call("countReceiveEdoc", method="GET"))["data"] == 0
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
