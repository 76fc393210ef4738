"""Private RabbitMQ nodes (alone, or three clustered) and a private PostgreSQL for the fault
suite: started by the tests on ports of their own, in temporary folders, so that restarting,
killing or cutting them off touches no other test's services. Every process started here is
stopped at the end of the session, also when a test fails (and at exit, should the session be
cut short)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# Not /usr/sbin/rabbitmqctl: that wrapper may switch users, and the node's cookie is in HOME.
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
# One quorum queue per unit and their segment files need more than the default 1,024 files
# (docs/bus.md); as much as the hard limit allows when that is lower.
RAISED_FILES = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0"'

_nodes: list[RabbitNode] = []
_instances: list[PostgresInstance] = []


@atexit.register
def _stop_leftovers() -> None:
    for node in _nodes:
        node.stop()
    for instance in _instances:
        instance.remove()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


def rabbitmq_available() -> str | None:
    """Why a private RabbitMQ node cannot be started here, or None."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        return f"{RABBITMQ_SERVER} is not installed"
    return None


class RabbitNode:
    """One RabbitMQ node: its own node name, AMQP and distribution ports, data and log folders
    and Erlang cookie (its HOME; the nodes of a cluster are given the same), no plugins, and
    an open-file limit of 65,536."""

    def __init__(self, base: Path, name: str, cookie: str | None = None) -> None:
        self.base = base / name
        self.name = f"{name}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.base.mkdir(parents=True)
        if cookie is not None:
            cookie_file = self.base / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)
        (self.base / "plugins").write_text("[].\n")
        (self.base / "env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return os.environ | {
            "HOME": str(self.base),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "plugins"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        with (self.base / "out.log").open("ab") as out:
            self.process = subprocess.Popen(
                ["sh", "-c", RAISED_FILES, RABBITMQ_SERVER], env=self.env(), stdout=out, stderr=out
            )
        if self not in _nodes:
            _nodes.append(self)
        self.wait_ready()

    def wait_ready(self) -> None:
        # the AMQP listener opens last, once the node has booted
        wait_until(lambda: listening(self.port), f"RabbitMQ node {self.name} did not start")

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """``rabbitmqctl`` on this node (with its cookie); RuntimeError saying why if it fails."""
        done = subprocess.run(
            [RABBITMQCTL, "-n", self.name, *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: "
                               f"{done.stderr or done.stdout}")  # fmt: skip
        return done.stdout

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _beam(self) -> int | None:
        """The node's Erlang VM (the start script runs it as a child)."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.base / "pid").read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL to the node's VM: it dies with its queues' state as it is on disk."""
        beam = self._beam()
        if beam is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(30)  # the start script ends with its VM
        wait_until(lambda: not listening(self.port), f"{self.name} still listening")
        (self.base / "pid").unlink(missing_ok=True)

    def stop(self) -> None:
        """A graceful stop (the start script's SIGTERM handler asks the node to stop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        beam = self._beam()
        if beam is not None:  # a VM left behind by a start script that was itself killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signal.SIGKILL)
            (self.base / "pid").unlink(missing_ok=True)


class RabbitCluster:
    """Nodes sharing one Erlang cookie, started in parallel and clustered with ``rabbitmqctl
    join_cluster`` to the first; the URL names every node."""

    def __init__(self, base: Path, prefix: str, size: int = 3) -> None:
        cookie = secrets.token_hex(20).upper()
        self.nodes = [RabbitNode(base, f"{prefix}n{i}", cookie) for i in range(1, size + 1)]

    @property
    def url(self) -> str:
        return "amqp://guest:guest@" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/"

    def start(self) -> None:
        self._each(RabbitNode.start)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", seed.name)
            node.ctl("start_app")
            node.wait_ready()
        self.wait_running(len(self.nodes))

    def stop(self) -> None:
        self._each(RabbitNode.stop)

    def _each(self, action: Callable[[RabbitNode], None]) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(action, self.nodes))

    def running_nodes(self) -> set[str]:
        """The nodes the cluster sees running, asked of a node that is up."""
        for node in self.nodes:
            if node.running and listening(node.port):
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
                    return set(status["running_nodes"])
        return set()

    def wait_running(self, count: int, timeout: float = 120) -> None:
        wait_until(lambda: len(self.running_nodes()) == count,
                   f"the cluster did not have {count} nodes running", timeout)  # fmt: skip

    def queues(self, prefix: str) -> list[dict[str, Any]]:
        """Name, type, members and leader of every queue whose name starts with ``prefix``."""
        for node in self.nodes:
            if node.running and listening(node.port):
                found = json.loads(node.ctl("list_queues", "name", "type", "members", "leader",
                                            "--formatter", "json"))  # fmt: skip
                return [q for q in found if str(q["name"]).startswith(prefix)]
        raise RuntimeError("no node of the cluster is running")

    def connections(self) -> list[dict[str, Any]]:
        """Every client connection in the cluster: its name (peer -> node's address) and the
        connection name the client gave."""
        for node in self.nodes:
            if node.running and listening(node.port):
                return list(json.loads(node.ctl("list_connections", "name", "client_properties",
                                                "--formatter", "json")))  # fmt: skip
        raise RuntimeError("no node of the cluster is running")


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def postgres_available() -> str | None:
    if _postgres_bin() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run PostgreSQL as"
    return None


class PostgresInstance:
    """A PostgreSQL cluster of its own (initdb into a temporary folder), on its own port, run
    as the postgres user when the tests run as root. No durability settings are loosened:
    restarts must find what was committed."""

    def __init__(self) -> None:
        bindir = _postgres_bin()
        assert bindir is not None
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="gw-faults-pg-"))
        self.port = free_port()
        self.owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        _instances.append(self)
        if self.owner is not None:
            os.chown(self.base, self.owner.pw_uid, self.owner.pw_gid)
        self._run("initdb", "-D", str(self.base / "data"), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool}: {done.stderr or done.stdout}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "log"),
                  "-o", options, "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.base / "data"), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        pid_file = self.base / "data" / "postmaster.pid"
        if pid_file.exists():  # pg_ctl could not stop it
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
