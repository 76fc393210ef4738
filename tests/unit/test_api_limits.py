"""The per-token rate limiter: a burst, then the average rate, each key on its own."""

from __future__ import annotations

import pytest

from gateway.api.limits import RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_time_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited) as caught:
        limiter.take("a")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == pytest.approx(0.5)


def test_allowance_comes_back_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    clock.now += 0.5  # one request's worth
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    clock.now += 10  # never more than the burst
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_keys_do_not_share_an_allowance() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    limiter.take("a")
    limiter.take("b")
    with pytest.raises(RateLimited):
        limiter.take("a")
