"""Pure translation between a delivery's metadata (``Waybill``) and message headers, and the
messages and transitions built from it. Both buses carry exactly these fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.bus import naming as n
from gateway.bus.model import Delivery, Message, Outcome, Transition
from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Waybill:
    """Everything a delivery carries besides its body (its waybill)."""

    delivery_id: str
    document_key: str
    recipient: str
    priority: int
    attempt: int
    queued_at: float
    expires_at: float
    claim: str | None = None  # claim-check reference when the body lives in the store
    redrives: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)

    def next_attempt(self) -> Waybill:
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def redriven(self, now: float, expires_at: float) -> Waybill:
        return dataclasses.replace(
            self, attempt=1, queued_at=now, expires_at=expires_at, redrives=self.redrives + 1
        )


def check_caller_headers(headers: Mapping[str, str]) -> None:
    for key, value in headers.items():
        if key.lower().startswith(n.RESERVED_HEADER_PREFIXES) or not isinstance(value, str):
            raise ValueError(f"delivery header {key!r} is reserved or its value not a string")


def new_envelope(
    delivery: Delivery, *, now: float, expires_at: float, claim: str | None
) -> Waybill:
    n.check_unit_code(delivery.recipient)
    check_caller_headers(delivery.headers)
    return Waybill(
        delivery_id=delivery.delivery_id,
        document_key=delivery.document_key,
        recipient=delivery.recipient,
        priority=delivery.priority,
        attempt=1,
        queued_at=now,
        expires_at=expires_at,
        claim=claim,
        headers=dict(delivery.headers),
    )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def envelope_headers(env: Waybill) -> dict[str, Any]:
    headers: dict[str, Any] = dict(env.headers)
    headers.update(
        {
            n.H_DELIVERY_ID: env.delivery_id,
            n.H_DOCUMENT_KEY: env.document_key,
            n.H_RECIPIENT: env.recipient,
            n.H_ATTEMPT: env.attempt,
            n.H_PRIORITY: env.priority,
            n.H_QUEUED_AT: _ms(env.queued_at),
            n.H_EXPIRES_AT: _ms(env.expires_at),
            n.H_REDRIVES: env.redrives,
        }
    )
    if env.claim is not None:
        headers[n.H_CLAIM] = env.claim
    return headers


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_headers(headers: Mapping[str, Any]) -> Waybill:
    """The envelope of a message; ``ValueError`` naming the header when one is missing."""
    try:
        claim = headers.get(n.H_CLAIM)
        return Waybill(
            delivery_id=_text(headers[n.H_DELIVERY_ID]),
            document_key=_text(headers[n.H_DOCUMENT_KEY]),
            recipient=_text(headers[n.H_RECIPIENT]),
            priority=int(headers[n.H_PRIORITY]),
            attempt=int(headers[n.H_ATTEMPT]),
            queued_at=int(headers[n.H_QUEUED_AT]) / 1000,
            expires_at=int(headers[n.H_EXPIRES_AT]) / 1000,
            claim=None if claim is None else _text(claim),
            redrives=int(headers.get(n.H_REDRIVES, 0)),
            headers={
                k: _text(v)
                for k, v in headers.items()
                if not k.lower().startswith(n.RESERVED_HEADER_PREFIXES)
            },
        )
    except KeyError as e:
        raise ValueError(f"message without the {e.args[0]} header") from e
    except (TypeError, ValueError) as e:
        raise ValueError(f"message with a malformed gateway header: {e}") from e


def notice_headers(notice_id: str, event: str) -> dict[str, Any]:
    """The headers of a transport notice on a unit's queue: its kind, id and event, and none
    of a copy's (a consumer keyed on ``gw-delivery-id`` fails on it rather than taking it for
    a letter)."""
    return {n.H_KIND: n.KIND_NOTICE, n.H_NOTICE_ID: notice_id, n.H_NOTICE: event}


def is_notice(headers: Mapping[str, Any] | None) -> bool:
    """A transport notice, not a copy: what every reader of a unit's queue asks first."""
    kind = (headers or {}).get(n.H_KIND)
    return kind is not None and _text(kind) == n.KIND_NOTICE


def to_message(env: Waybill, body: bytes, *, redelivered: bool) -> Message:
    return Message(
        delivery_id=env.delivery_id,
        document_key=env.document_key,
        recipient=env.recipient,
        priority=env.priority,
        attempt=env.attempt,
        body=body,
        queued_at=env.queued_at,
        expires_at=env.expires_at,
        redelivered=redelivered,
        redrives=env.redrives,
        headers=env.headers,
    )


def transition(
    env: Waybill,
    outcome: Outcome,
    at: float,
    *,
    reason: str | None = None,
    retry_at: float | None = None,
) -> Transition:
    return Transition(
        outcome=outcome,
        delivery_id=env.delivery_id,
        document_key=env.document_key,
        recipient=env.recipient,
        attempt=env.attempt,
        priority=env.priority,
        at=at,
        reason=reason,
        retry_at=retry_at,
    )


def describe_error(error: BaseException) -> str:
    """A short reason for the ledger: the catalogue code when there is one."""
    if isinstance(error, GatewayError):
        return f"{error.code}: {error.message}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
