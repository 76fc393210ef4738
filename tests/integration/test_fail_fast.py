"""A broker or a database that accepts TCP but never answers: commands say so within the
connect timeout instead of hanging, and `gateway serve` answers 503 with the reason while it
keeps trying, then starts once the broker answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp


class Gate:
    """A TCP port that holds every connection silently until opened; then it forwards new
    connections to ``target`` (a broker that stops answering, then comes back)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.open = False
        self.port = 0
        self._held: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            self._held.append(writer)  # accepted, never answered
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Gate]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
            for writer in self._held:
                writer.close()


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return base | {"GATEWAY_HOME": str(tmp_path / "var"), "GATEWAY_CONNECT_TIMEOUT": "2"} | extra


async def gateway(tmp_path: Path, *args: str, **extra: str) -> tuple[int, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        env=env(tmp_path, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), time.monotonic() - started


async def test_commands_give_up_on_a_silent_broker_or_database_within_the_timeout(
    tmp_path: Path,
) -> None:
    async with Gate(("127.0.0.1", 1)).serving() as gate:
        silent = f"amqp://guest:guest@127.0.0.1:{gate.port}/"
        code, out, took = await gateway(tmp_path, "bus", "status", GATEWAY_AMQP_URL=silent)
        assert code == 2 and f"RabbitMQ at 127.0.0.1:{gate.port} did not answer within 2 s" in out
        assert took < 10
        database = f"postgresql+asyncpg://gw:secret@127.0.0.1:{gate.port}/gateway"
        code, out, took = await gateway(tmp_path, "tokens", "list", GATEWAY_DATABASE_URL=database)
        assert code == 2 and f"the database 127.0.0.1:{gate.port} is unavailable" in out
        assert "secret" not in out and took < 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_serve_answers_503_while_the_broker_is_silent_and_starts_when_it_answers(
    tmp_path: Path, amqp_url: str
) -> None:
    broker = urlsplit(amqp_url)
    async with Gate((broker.hostname or "127.0.0.1", broker.port or 5672)).serving() as gate:
        url = amqp_url.replace(f":{broker.port or 5672}/", f":{gate.port}/")
        port = free_port()
        units = tmp_path / "units.csv"  # a small directory: few queues to declare
        units.write_text(
            "code,name,parent_code,level,delivery,endpoint,status\n"
            "000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active\n"
            "000.00.05.H07,Sở Nội vụ,000.00.00.H07,2,pull,,active\n",
            encoding="utf-8",
        )
        log = (tmp_path / "serve.log").open("w")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--port", str(port), "--grace", "2",
            env=env(
                tmp_path,
                GATEWAY_AMQP_URL=url,
                GATEWAY_BUS_NAMESPACE="gwfailfast",
                GATEWAY_DIRECTORY=str(units),
            ),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            status, body = 0, {}
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    status, body = await get(f"http://127.0.0.1:{port}/readyz")
                    break
                await asyncio.sleep(0.1)
            # anyone may ask: the code of what is awaited, the details only in the log
            assert (status, body["starting"]) == (503, "bus_unavailable")
            code, problem = await get(f"http://127.0.0.1:{port}/v1/inbox", "gw_any_token")
            assert (code, problem["code"]) == (503, "bus_unavailable")
            assert "the gateway is starting" in str(problem["detail"])

            gate.open = True  # the broker answers again
            for _ in range(600):
                status, body = await get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert status == 200 and body["ready"] is True
            logged = (tmp_path / "serve.log").read_text()
            assert "keeps trying in the background" in logged
            assert "did not answer within 2 s" in logged
        finally:
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 30) == 0
            log.close()
