"""How the benchmarks time functions against each other."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rates(
    work: dict[str, Callable[[], object]], seconds: float, rounds: int
) -> dict[str, float]:
    """Calls per second of each function: the best of ``rounds`` alternating rounds, so that
    load from other processes and frequency changes hurt every side of a ratio alike."""
    best = dict.fromkeys(work, 0.0)
    for f in work.values():
        f()  # warm caches (schemas, parsers, chain cache, certificate parse)
    for _ in range(rounds):
        for name, f in work.items():
            count = 0
            started = time.perf_counter()
            deadline = started + seconds / rounds
            while True:
                for _ in range(10):
                    f()
                count += 10
                now = time.perf_counter()
                if now >= deadline:
                    break
            best[name] = max(best[name], count / (now - started))
    return best
