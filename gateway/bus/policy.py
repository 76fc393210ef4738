"""Pure retry, expiry and dead-letter decisions: a policy, a clock reading and an attempt in,
a decision out. Both buses use these functions, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.bus.model import Outcome
from gateway.config import BusSettings

URGENT_PRIORITY = 1  # edXML Priority 1 urgent, 2 very urgent, 3 flash, 4 flash-timed


@dataclass(frozen=True, slots=True)
class Schedule:
    delays_ms: tuple[int, ...]  # before retry 1, 2, 3...; the last one repeats
    ttl_ms: int

    def __post_init__(self) -> None:
        if not self.delays_ms or any(d <= 0 for d in self.delays_ms) or self.ttl_ms <= 0:
            raise ValueError(f"invalid retry schedule {self.delays_ms} / ttl {self.ttl_ms} ms")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    normal: Schedule
    urgent: Schedule
    max_attempts: int

    @classmethod
    def from_settings(cls, bus: BusSettings) -> RetryPolicy:
        return cls(
            normal=Schedule(tuple(s * 1000 for s in bus.retry_schedule), bus.ttl * 1000),
            urgent=Schedule(
                tuple(s * 1000 for s in bus.urgent_retry_schedule), bus.urgent_ttl * 1000
            ),
            max_attempts=bus.max_attempts,
        )

    @classmethod
    def of_seconds(
        cls,
        delays: Sequence[float],
        ttl: float,
        *,
        urgent_delays: Sequence[float] | None = None,
        urgent_ttl: float | None = None,
        max_attempts: int = 48,
    ) -> RetryPolicy:
        """A policy in (fractional) seconds, for short schedules in tests and benchmarks."""

        def ms(values: Sequence[float]) -> tuple[int, ...]:
            return tuple(round(v * 1000) for v in values)

        return cls(
            normal=Schedule(ms(delays), round(ttl * 1000)),
            urgent=Schedule(
                ms(urgent_delays if urgent_delays is not None else delays),
                round((urgent_ttl if urgent_ttl is not None else ttl) * 1000),
            ),
            max_attempts=max_attempts,
        )

    def schedule_for(self, priority: int) -> Schedule:
        return self.urgent if priority >= URGENT_PRIORITY else self.normal

    def all_delays_ms(self) -> tuple[int, ...]:
        """Every distinct delay of both schedules: one delay queue each."""
        return tuple(sorted(set(self.normal.delays_ms) | set(self.urgent.delays_ms)))

    def expires_at(self, priority: int, now: float) -> float:
        return now + self.schedule_for(priority).ttl_ms / 1000


def retry_delay_ms(attempt: int, delays_ms: Sequence[int]) -> int:
    """The delay after failed attempt ``attempt`` (1-based); the last step repeats."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    return delays_ms[min(attempt, len(delays_ms)) - 1]


def is_expired(now: float, expires_at: float) -> bool:
    return now >= expires_at


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome  # RETRYING, EXPIRED or DEAD_LETTERED
    reason: str
    delay_ms: int | None = None  # RETRYING: which delay queue / how long to wait


def decide_failure(
    policy: RetryPolicy,
    *,
    priority: int,
    attempt: int,
    now: float,
    expires_at: float,
    retryable: bool,
    reason: str,
) -> Decision:
    """What happens to a delivery whose attempt ``attempt`` failed.

    A retry never waits past the expiry when a shorter step of the schedule fits: the longest
    step that fits is taken instead, so the expiry is noticed on time; when none fits, the
    shortest step is taken and the delivery expires when it comes back.
    """
    if not retryable:
        return Decision(Outcome.DEAD_LETTERED, reason)
    if is_expired(now, expires_at):
        return Decision(Outcome.EXPIRED, f"time-to-live passed; last error: {reason}")
    if attempt >= policy.max_attempts:
        return Decision(Outcome.DEAD_LETTERED, f"{attempt} attempts failed; last error: {reason}")
    delays = policy.schedule_for(priority).delays_ms
    delay = retry_delay_ms(attempt, delays)
    remaining_ms = (expires_at - now) * 1000
    if delay > remaining_ms:
        fitting = [d for d in delays if d <= remaining_ms]
        delay = max(fitting) if fitting else min(delays)
    return Decision(Outcome.RETRYING, reason, delay)
