"""One attempt of a delivery, shared by both buses: call the handler unless the delivery has
expired, and decide what happens next. The buses only carry the decision out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from gateway.bus.codec import Waybill, describe_error, to_message
from gateway.bus.model import Handler, Outcome, RetryableDeliveryError
from gateway.bus.policy import RetryPolicy, decide_failure, is_expired

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Step:
    outcome: Outcome  # DELIVERED, RETRYING, EXPIRED or DEAD_LETTERED
    reason: str | None = None
    delay_ms: int | None = None  # RETRYING only


async def attempt(
    handler: Handler,
    env: Waybill,
    fetch_body: Callable[[], Awaitable[bytes]],
    *,
    redelivered: bool,
    policy: RetryPolicy,
    clock: Callable[[], float],
) -> Step:
    """Run one attempt. ``asyncio.CancelledError`` propagates: the delivery stays unacknowledged
    and comes back."""
    if is_expired(clock(), env.expires_at):
        return Step(Outcome.EXPIRED, f"time-to-live passed before attempt {env.attempt}")
    retryable = False
    try:
        body = await fetch_body()
    except Exception as e:
        reason = describe_error(e)
    else:
        try:
            await handler(to_message(env, body, redelivered=redelivered))
        except RetryableDeliveryError as e:
            retryable, reason = True, describe_error(e)
        except Exception as e:
            # Not retryable by the handler's own word: dead-lettered, never looped.
            log.warning(
                "delivery %s to %s failed for good", env.delivery_id, env.recipient, exc_info=True
            )
            reason = describe_error(e)
        else:
            return Step(Outcome.DELIVERED)
    decision = decide_failure(
        policy,
        priority=env.priority,
        attempt=env.attempt,
        now=clock(),
        expires_at=env.expires_at,
        retryable=retryable,
        reason=reason,
    )
    return Step(decision.outcome, decision.reason, decision.delay_ms)


async def drain(tasks: Collection[asyncio.Task[object]], grace: float) -> None:
    """Let running handlers finish for ``grace`` seconds, then cancel the rest: what they held
    is not acknowledged and comes back."""
    if not tasks:
        return
    _, late = await asyncio.wait(list(tasks), timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
