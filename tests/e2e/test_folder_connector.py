"""`gateway adapter folder` as an agency would run it, against a running gateway: 200 files in
and 50 letters out, with a kill -9 in the middle; everything arrives, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from gatewaystack import PULL, SENDER, Stack

from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import build_package

FILES_IN, LETTERS_OUT = 200, 50
T = TypeVar("T")


def start(embedded: Stack, root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "adapter", "folder", "--unit", PULL,
             "--in", str(root / "in"), "--out", str(root / "out"), "--url", embedded.url,
             "--token", embedded.tokens[PULL], "--keys", str(embedded.keys), "--interval", "0.2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def until(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def all_items(client: GatewayClient) -> list[dict[str, object]]:
    items, after = [], None
    while True:
        page = await client.inbox(after=after, limit=500)
        items += page["items"]
        after = page["next"]
        if not after:
            return items


async def test_a_kill_in_the_middle_loses_nothing_and_sends_nothing_twice(
    embedded: Stack, tmp_path: Path
) -> None:
    root = tmp_path / "agency"
    (root / "in").mkdir(parents=True)
    for n in range(FILES_IN):  # unsigned, as the agency's system writes them
        letter = build_letter(unit(PULL), [unit(SENDER)], f"Báo cáo số {n}", number=f"{n + 1}")
        (root / "in" / f"letter-{n:03}.edxml").write_bytes(build_package(letter))
    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        for n in range(LETTERS_OUT):
            letter = build_letter(unit(SENDER), [unit(PULL)], f"Giấy mời {n}", number=f"{n + 1}")
            await gw.submit(sign_as_unit(letter, embedded.keys))

    log = tmp_path / "connector.log"
    first = start(embedded, root, log)
    sent = root / "in" / "sent"
    await until(lambda: len(list(sent.glob("*.edxml"))) >= FILES_IN // 4)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert len(list(sent.glob("*.edxml"))) < FILES_IN  # killed in the middle

    second = start(embedded, root, log)
    try:
        out = root / "out"
        await until(
            lambda: (
                not list((root / "in").glob("*.edxml"))
                and len(list(out.glob("*.edxml"))) == LETTERS_OUT
            )
        )
        async with GatewayClient(embedded.url, embedded.tokens[PULL]) as gw:
            await until_async(lambda: all_items(gw), lambda items: items == [])
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    assert len(list(sent.glob("*.edxml"))) == FILES_IN
    assert not list((root / "in" / "rejected").iterdir())
    received = [p.read_bytes() for p in (root / "out").glob("*.edxml")]
    assert len(set(received)) == LETTERS_OUT  # each letter once
    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        items = await all_items(gw)
    keys = [str(i["document_key"]) for i in items]
    assert len(keys) == len(set(keys)) == FILES_IN  # every file once, none twice
    lines = log.read_text()
    assert lines.count("sent letter-") >= FILES_IN * 3 // 4  # one line per file


async def until_async(
    get: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 60
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done(await get()):
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.2)
