"""CPU time and peak memory of running processes, read from Linux's /proc (the benchmark's
meter for the gateway, the broker and the database)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its children that have ended."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def pids_named(*names: str) -> list[int]:
    """Processes whose command name (``comm``) is one of ``names``: beam.smp, postgres."""
    found = []
    for entry in PROC.iterdir() if PROC.exists() else ():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def with_children(pid: int) -> list[int]:
    """``pid`` and its live child processes (the workers of ``gateway serve --workers``)."""
    found = [pid]
    for entry in PROC.iterdir() if PROC.exists() else ():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory now (VmRSS) and at its peak (VmHWM), in KiB; empty if unknown."""
    out: dict[str, int] = {}
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class CpuMeter:
    """CPU seconds used by groups of processes between ``start`` and ``stop`` (which may be
    read more than once: each reading counts from the start). A group is a
    function listing its processes, asked again at the stop: a process that started in
    between (a new database session) counts whole, one that ended in between is lost."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._before: dict[str, dict[int, float]] = {}

    def start(self) -> None:
        self._before = {
            name: {p: cpu_seconds(p) for p in pids()} for name, pids in self.groups.items()
        }

    def stop(self) -> dict[str, float]:
        used = {}
        for name, pids in self.groups.items():
            before = self._before[name]
            used[name] = sum(max(0.0, cpu_seconds(p) - before.get(p, 0.0)) for p in pids())
        return used


def open_files(pid: int) -> int:
    """File descriptors the process holds now (0 if unknown)."""
    try:
        return len(list((PROC / str(pid) / "fd").iterdir()))
    except OSError:
        return 0
