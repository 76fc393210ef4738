"""A TCP proxy in front of a service that can cut every connection and refuse new ones for a
while: what a client sees when the network between it and the service fails (the fault suite
puts it in front of RabbitMQ)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """``async with TcpProxy(service_port) as proxy``: connect to ``proxy.port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = _free_port()
        self.cut_until = 0.0
        self.links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening and drop every connection, for good: the service died."""
        assert self._server is not None
        self._server.close()
        self._drop()

    def _drop(self) -> None:
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()

    def cut(self, seconds: float) -> None:
        """Drop every connection now; refuse new ones for ``seconds``."""
        self.cut_until = time.monotonic() + seconds
        self._drop()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.cut_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links -= {writer, up_writer}
