"""Retry schedule, expiry and dead-letter decisions (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bus.model import Outcome
from gateway.bus.policy import RetryPolicy, decide_failure, is_expired, retry_delay_ms
from gateway.config import BusSettings

DEFAULT = RetryPolicy.from_settings(BusSettings())


def test_default_schedule_is_30s_2min_10min_1h_then_hourly() -> None:
    delays = DEFAULT.normal.delays_ms
    assert [retry_delay_ms(a, delays) for a in range(1, 8)] == [
        30_000,
        120_000,
        600_000,
        3_600_000,
        3_600_000,
        3_600_000,
        3_600_000,
    ]
    assert DEFAULT.normal.ttl_ms == 24 * 3600 * 1000


def test_urgent_and_flash_letters_use_the_urgent_schedule() -> None:
    assert DEFAULT.schedule_for(0) is DEFAULT.normal
    for priority in (1, 2, 3, 4):
        assert DEFAULT.schedule_for(priority) is DEFAULT.urgent
    assert DEFAULT.urgent.ttl_ms < DEFAULT.normal.ttl_ms
    assert DEFAULT.urgent.delays_ms[0] < DEFAULT.normal.delays_ms[0]
    assert DEFAULT.expires_at(3, 1000.0) == 1000.0 + 4 * 3600


def test_all_delays_are_the_distinct_steps_of_both_schedules() -> None:
    assert DEFAULT.all_delays_ms() == (10_000, 30_000, 120_000, 600_000, 3_600_000)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay_ms(0, (1000,))


def decide(**kw: object) -> object:
    args: dict[str, object] = {
        "priority": 0,
        "attempt": 1,
        "now": 0.0,
        "expires_at": 86_400.0,
        "retryable": True,
        "reason": "down",
    }
    args.update(kw)
    return decide_failure(DEFAULT, **args)  # type: ignore[arg-type]


def test_a_retryable_failure_waits_for_the_step_of_its_attempt() -> None:
    d = decide(attempt=2)
    assert (d.outcome, d.delay_ms, d.reason) == (Outcome.RETRYING, 120_000, "down")


def test_a_permanent_failure_is_dead_lettered_even_after_expiry() -> None:
    assert decide(retryable=False).outcome is Outcome.DEAD_LETTERED
    assert decide(retryable=False, now=10**6).outcome is Outcome.DEAD_LETTERED


def test_past_its_time_to_live_a_delivery_expires() -> None:
    d = decide(now=86_400.0)
    assert d.outcome is Outcome.EXPIRED and "time-to-live" in d.reason
    assert is_expired(5.0, 5.0) and not is_expired(4.9, 5.0)


def test_the_last_allowed_attempt_is_dead_lettered() -> None:
    d = decide(attempt=DEFAULT.max_attempts)
    assert d.outcome is Outcome.DEAD_LETTERED and "48 attempts" in d.reason
    assert decide(attempt=DEFAULT.max_attempts - 1).outcome is Outcome.RETRYING


def test_a_retry_never_waits_past_the_expiry_when_a_shorter_step_fits() -> None:
    # 5 minutes left, the schedule says 1 h: the 2 min step is the longest that fits.
    d = decide(attempt=5, now=86_400.0 - 300)
    assert d.delay_ms == 120_000
    # 5 s left: nothing fits, the shortest step is taken and it expires when it comes back.
    assert decide(attempt=5, now=86_400.0 - 5).delay_ms == 30_000


@given(
    attempt=st.integers(1, 47),
    now=st.floats(0, 86_399),
    priority=st.integers(0, 4),
)
def test_a_retry_delay_is_always_a_step_of_its_schedule(
    attempt: int, now: float, priority: int
) -> None:
    d = decide_failure(
        DEFAULT,
        priority=priority,
        attempt=attempt,
        now=now,
        expires_at=DEFAULT.expires_at(priority, 0.0),
        retryable=True,
        reason="x",
    )
    if d.outcome is Outcome.RETRYING:
        assert d.delay_ms in DEFAULT.schedule_for(priority).delays_ms


def test_policies_in_fractional_seconds_for_short_schedules() -> None:
    p = RetryPolicy.of_seconds([0.2, 0.4], ttl=1.5, urgent_ttl=0.5, max_attempts=3)
    assert p.normal.delays_ms == (200, 400) and p.normal.ttl_ms == 1500
    assert p.urgent.delays_ms == (200, 400) and p.urgent.ttl_ms == 500
    with pytest.raises(ValueError):
        RetryPolicy.of_seconds([], ttl=1)
