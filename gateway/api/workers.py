"""Several gateway processes behind one port (``gateway serve --workers N``).

The parent prepares what must happen once (the key folder made, the database migrated, the
bus's queues declared), opens N sockets listening on the port, and forks N workers, each
accepting on its own socket (the kernel spreads the connections among them); each worker is a
whole gateway (HTTP, writer, consumers, relay). They agree through
the database: the ledger's lock orders every append across processes, so sequence numbers and
the Merkle tree stay one log. SIGINT or SIGTERM to the parent stops every worker gracefully;
if a worker dies, the others are stopped too and the parent exits with an error, for the
service manager to act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from gateway.config import Settings

log = logging.getLogger(__name__)


def port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to one port, one per worker, each to listen once its worker has
    started. The kernel spreads new connections among the sockets that listen (SO_REUSEPORT),
    so none waits in the backlog of a worker still starting; with one socket shared by every
    worker, the first worker to accept took a burst of connections, and a client's keep-alive
    connections mostly stayed on one worker while the others idled."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A port another process listens on is refused, even if it shares its port the same way
    # (another gateway started by mistake): bound without SO_REUSEPORT, this one fails then.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0: a free one, which all of them take
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sockets.append(sock)
    return sockets


async def _prepare(settings: Settings) -> None:
    """What the workers would otherwise race to do at once: migrate the database, and declare
    the bus's queues (creating 800 quorum queues from several connections at the same time is
    asking for trouble; declaring existing ones again is not)."""
    from gateway.bus import open_bus
    from gateway.db.engine import open_engine
    from gateway.db.migrate import upgrade
    from gateway.directory import load_directory
    from gateway.service.runtime import directory_file

    engine = open_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    async with open_bus(settings) as bus:
        await bus.declare(
            unit.code for unit in load_directory(directory_file(settings, create=True))
        )


def run_workers(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    grace: float,
    ssl_context: ssl.SSLContext | None,
    say: Callable[[str], None],
) -> int:
    """Serve with ``workers`` processes until stopped; return the exit status."""
    from gateway.api.app import serve

    asyncio.run(_prepare(settings))  # once, before the workers race to do it
    sockets = port_sockets(host, port, workers)
    scheme = "https" if ssl_context else "http"
    say(f"gateway: {workers} worker processes on {scheme}://{host}:{sockets[0].getsockname()[1]}")
    children: list[int] = []
    with _shared_metrics():
        for sock in sockets:
            pid = os.fork()
            if pid == 0:  # a worker: one whole gateway on its own socket of the port
                for other in sockets:
                    if other is not sock:
                        other.close()
                status = 0
                try:
                    serve(settings, grace=grace, ssl_context=ssl_context, say=None, sock=sock)
                except BaseException:
                    log.exception("worker %d failed", os.getpid())
                    status = 1
                finally:
                    sys.stdout.flush()
                    os._exit(status)
            children.append(pid)
        for sock in sockets:
            sock.close()
        return _supervise(children, grace)


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """A folder where every worker keeps its metrics, so that a scrape answered by any of them
    reports all of them (prometheus_client's multiprocess mode, chosen before any worker makes
    a metric); removed when the workers are done."""
    from prometheus_client import values

    from gateway.api.health import MULTIPROCESS_VARIABLE

    folder = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROCESS_VARIABLE] = folder
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(children: list[int], grace: float) -> int:
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    def hangup(signum: int, _frame: object) -> None:  # every worker reloads its files
        for pid in children:
            _signal(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)
    status = 0
    alive = set(children)
    while alive:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        if not stopping and (code != 0 or alive):
            log.error("worker %d ended (status %d); stopping the others", pid, code)
            status = 1
            stopping = True
            for other in alive:
                _signal(other, signal.SIGTERM)
            _kill_after(alive, grace + 5)
    return status


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _kill_after(pids: set[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                pids.discard(pid)
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
