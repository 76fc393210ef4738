"""Request limits: a token bucket per access token, and a count of the package bodies each token
and the whole process are receiving, so one busy or broken agency system cannot crowd out the
others. Refusals are ``429 rate_limited`` with ``Retry-After``."""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.errors import GatewayError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimited(GatewayError):
    def __init__(self, retry_after: float, what: str = "too many requests") -> None:
        super().__init__("rate_limited", f"{what}; try again in {retry_after:.1f} s")
        self.retry_after = retry_after


class RateLimiter:
    """``rate`` requests per second on average and ``burst`` at once, per key."""

    MAX_KEYS = 100_000  # forget idle buckets beyond this many keys

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s allowance, or raise RateLimited."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise RateLimited(math.ceil((1 - bucket.tokens) / self.rate * 10) / 10)
        bucket.tokens -= 1


class Uploads:
    """Package bodies in flight: at most ``per_key`` per token and ``total`` in all, each
    received within ``timeout`` seconds."""

    def __init__(self, per_key: int, total: int, timeout: float) -> None:
        self.per_key = per_key
        self.total = total
        self.timeout = timeout
        self._held: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """One upload of ``key`` for the duration, or RateLimited when there are too many."""
        if self._held[key] >= self.per_key or self._held.total() >= self.total:
            raise RateLimited(1.0, "too many package uploads at once")
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
