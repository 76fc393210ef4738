"""Waybill <-> headers (pure)."""

from __future__ import annotations

import pytest

from gateway.bus import codec
from gateway.bus import naming as n
from gateway.bus.model import Delivery, Outcome


def envelope(claim: str | None = None) -> codec.Waybill:
    d = Delivery("id-1", "doc-1", "000.00.05.H07", b"body", priority=2, headers={"kind": "doc"})
    return codec.new_envelope(d, now=1000.25, expires_at=2000.5, claim=claim)


def test_headers_round_trip() -> None:
    env = envelope(claim="sha256:" + "a" * 64)
    headers = codec.envelope_headers(env)
    assert headers[n.H_DELIVERY_ID] == "id-1"
    assert headers[n.H_ATTEMPT] == 1 and headers[n.H_PRIORITY] == 2
    assert headers[n.H_QUEUED_AT] == 1_000_250 and headers[n.H_EXPIRES_AT] == 2_000_500
    assert codec.parse_headers(headers) == env


def test_parse_accepts_bytes_values_and_ignores_broker_headers() -> None:
    headers = codec.envelope_headers(envelope())
    headers[n.H_DELIVERY_ID] = b"id-1"
    headers["x-death"] = [{"count": 1}]
    assert codec.parse_headers(headers) == envelope()


def test_a_message_without_gateway_headers_is_named() -> None:
    headers = codec.envelope_headers(envelope())
    del headers[n.H_RECIPIENT]
    with pytest.raises(ValueError, match="gw-recipient"):
        codec.parse_headers(headers)


@pytest.mark.parametrize("key", ["gw-attempt", "x-death", "GW-anything"])
def test_callers_may_not_set_reserved_headers(key: str) -> None:
    with pytest.raises(ValueError):
        codec.check_caller_headers({key: "1"})


def test_next_attempt_and_redrive() -> None:
    env = envelope().next_attempt().next_attempt()
    assert env.attempt == 3 and env.delivery_id == "id-1"
    again = env.redriven(5000.0, 6000.0)
    assert (again.attempt, again.redrives, again.queued_at, again.expires_at) == (
        1,
        1,
        5000.0,
        6000.0,
    )


def test_transition_carries_the_delivery_ids() -> None:
    t = codec.transition(envelope(), Outcome.RETRYING, 1001.0, reason="down", retry_at=1031.0)
    assert (t.delivery_id, t.document_key, t.recipient, t.attempt, t.priority) == (
        "id-1",
        "doc-1",
        "000.00.05.H07",
        1,
        2,
    )
    assert t.at_datetime.year == 1970 and t.retry_at == 1031.0


def test_a_notice_carries_its_kind_and_none_of_a_copys_headers() -> None:
    headers = codec.notice_headers("n-1", "expired")
    assert headers == {"gw-kind": "notice", "gw-notice-id": "n-1", "gw-notice": "expired"}
    assert codec.is_notice(headers) and codec.is_notice({"gw-kind": b"notice"})
    assert not codec.is_notice(codec.envelope_headers(envelope()))
    assert not codec.is_notice(None)
    with pytest.raises(ValueError, match="gw-delivery-id"):
        codec.parse_headers(headers)  # never taken for a copy
