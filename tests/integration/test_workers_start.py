"""What several gateway processes on one machine meet at start: the port's connections spread
over every worker, and two processes binding the ledger's identity at once on one SQLite file."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import Counter
from pathlib import Path

import pytest

from gateway.api.workers import port_sockets
from gateway.db.engine import create_engine
from gateway.db.testing import prepare_database
from gateway.ledger.identity import bind_identity, read_identity

ORIGIN = "gateway.test/start"


def _accept_all(sock: socket.socket) -> int:
    """Accept what waits in ``sock``'s backlog; how many there were."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_each_worker_gets_its_share_of_the_connections() -> None:
    sockets = port_sockets("127.0.0.1", 0, 3)
    clients: list[socket.socket] = []
    try:
        for sock in sockets:  # each worker's, once it has started
            sock.listen()
        port = sockets[0].getsockname()[1]
        assert {s.getsockname()[1] for s in sockets} == {port}  # port 0: the first one's
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
        accepted = Counter({index: _accept_all(sock) for index, sock in enumerate(sockets)})
        assert sum(accepted.values()) == 60
        # The kernel hashes each connection to a socket: all three get some (a socket left
        # with none of 60 would happen about once in 10^10 runs).
        assert set(accepted) == {0, 1, 2}, accepted
        with pytest.raises(OSError) as taken:  # a second gateway on the port by mistake
            port_sockets("127.0.0.1", port, 2)
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        for s in clients + sockets:
            s.close()


def test_no_connection_waits_for_a_worker_still_starting() -> None:
    """A worker's socket listens only once the worker has started: until then the port's
    connections go to the workers that serve, and none while no worker does."""
    started, starting = sockets = port_sockets("127.0.0.1", 0, 2)
    clients: list[socket.socket] = []
    try:
        port = started.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):  # no worker has started yet
            socket.create_connection(("127.0.0.1", port), timeout=5)
        started.listen()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        assert _accept_all(started) == 30
        starting.listen()  # the other worker has started: it gets its share from now on
        clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        assert _accept_all(starting) > 0
    finally:
        for s in clients + sockets:
            s.close()


async def test_two_processes_bind_the_identity_of_a_new_sqlite_ledger_at_once(
    tmp_path: Path,
) -> None:
    """Both read that the ledger has no identity, and one writes it: the second waits for the
    write lock and then finds it, instead of failing with "database is locked"."""
    for attempt in range(10):
        url = await prepare_database(f"sqlite+aiosqlite:///{tmp_path}/ledger{attempt}.db")
        engines = [create_engine(url), create_engine(url)]
        try:
            bound = await asyncio.gather(*(bind_identity(e, ORIGIN, None) for e in engines))
            assert {b.origin for b in bound} == {ORIGIN}
            async with engines[0].connect() as conn:
                found = await read_identity(conn)
            assert found is not None and found.origin == ORIGIN
        finally:
            for engine in engines:
                await engine.dispose()
