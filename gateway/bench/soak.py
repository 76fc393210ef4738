"""What a long run at a steady rate shows: the gateway's memory and open files sampled over the
run, the memory's slope once it has warmed up, and whether latency drifts (``gateway bench
--rate R --duration SECONDS``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.bench.procstat import memory_kib, open_files, with_children

WARM_UP = 0.25  # the first quarter of the run is left out of the memory's slope


@dataclass
class Sample:
    at: float  # seconds since the start
    rss_mib: float  # the gateway's processes together
    open_files: int
    accepted: int
    refused: int


@dataclass
class Soak:
    """Samples of the gateway's processes every ``every`` seconds."""

    pid: int
    every: float
    samples: list[Sample] = field(default_factory=list)

    async def run(self, started: float, counts: Callable[[], tuple[int, int]]) -> None:
        while True:
            pids = with_children(self.pid)
            accepted, refused = counts()
            self.samples.append(
                Sample(
                    at=time.perf_counter() - started,
                    rss_mib=sum(memory_kib(p).get("VmRSS", 0) for p in pids) / 1024,
                    open_files=sum(open_files(p) for p in pids),
                    accepted=accepted,
                    refused=refused,
                )
            )
            await asyncio.sleep(self.every)

    def report(self, latencies: list[tuple[float, float]]) -> dict[str, Any]:
        """The memory's slope after warm-up (MiB per minute, least squares), open files at the
        start and the end, and the median submit latency of the first and last fifth of the
        run (``latencies``: (seconds since the start, latency))."""
        warm = [s for s in self.samples if s.at >= WARM_UP * self.samples[-1].at]
        first, last = self.samples[0], self.samples[-1]
        return {
            "samples": [vars(s) for s in self.samples],
            "rss_mib_per_min_after_warm_up": slope([(s.at, s.rss_mib) for s in warm]) * 60,
            "open_files": {"first": first.open_files, "last": last.open_files},
            "submit_p50_ms": _drift(latencies),
            "refused": last.refused,
        }


def slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def _drift(latencies: list[tuple[float, float]]) -> dict[str, float | None]:
    if not latencies:
        return {"first_fifth": None, "last_fifth": None}
    end = max(at for at, _ in latencies)

    def median(values: list[float]) -> float | None:
        values = sorted(values)
        return values[len(values) // 2] * 1000 if values else None

    return {
        "first_fifth": median([lat for at, lat in latencies if at <= end / 5]),
        "last_fifth": median([lat for at, lat in latencies if at >= end * 4 / 5]),
    }


def format_soak(soak: dict[str, Any]) -> list[str]:
    p50 = soak["submit_p50_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    first, last = soak["samples"][0], soak["samples"][-1]
    return [
        f"soak: {len(soak['samples'])} samples over {last['at']:,.0f} s; gateway RSS "
        f"{first['rss_mib']:,.0f} -> {last['rss_mib']:,.0f} MiB, "
        f"{soak['rss_mib_per_min_after_warm_up']:+.2f} MiB/min after warm-up",
        f"soak: open files {soak['open_files']['first']} -> {soak['open_files']['last']}; "
        f"submit p50 ms first fifth {ms(p50['first_fifth'])}, last fifth "
        f"{ms(p50['last_fifth'])}; refused {soak['refused']}",
    ]
