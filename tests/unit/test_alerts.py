"""The alert rules: each kind raised past its threshold and not before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import AlertSettings
from gateway.service.alerts import alerts_of
from gateway.service.certificates import CertificateFacts

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
LIMITS = AlertSettings(push_failing_minutes=15, waiting_minutes=60, cert_days=30,
                       checkpoint_minutes=10)  # fmt: skip


def row(unit: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"unit": unit, "waiting": 0, "oldest_waiting_at": None,
                            "retrying": 0, "expired": 0, "dead": 0}  # fmt: skip
    return base | values


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def kinds(units: list[dict[str, Any]], **more: Any) -> list[tuple[str, str]]:
    options: dict[str, Any] = {"certificates": [], "uncovered": 0, "since": None} | more
    found = alerts_of(
        LIMITS,
        {"units": units},
        options["certificates"],
        options["uncovered"],
        options["since"],
        NOW,
    )
    return [(a.kind, a.subject) for a in found]


def test_nothing_wrong_raises_nothing() -> None:
    assert kinds([row("A", waiting=3, oldest_waiting_at=at(5))]) == []


def test_a_copy_waiting_past_the_threshold() -> None:
    assert kinds([row("A", waiting=1, oldest_waiting_at=at(59))]) == []
    assert kinds([row("A", waiting=1, oldest_waiting_at=at(61))]) == [("copy_waiting", "A")]


def test_dead_or_expired_copies() -> None:
    assert kinds([row("A", dead=1)]) == [("dead_letters", "A")]
    assert kinds([row("B", expired=2)]) == [("dead_letters", "B")]


def test_a_push_endpoint_failing_longer_than_the_threshold() -> None:
    failing = {"at": at(1), "reason": "HTTP 503"}
    short = row("P", waiting=1, oldest_waiting_at=at(10), last_failure=failing,
                last_delivered_at=at(30))  # fmt: skip
    assert kinds([short]) == []  # failing for 10 minutes
    long = row("P", waiting=1, oldest_waiting_at=at(20), last_failure=failing,
               last_delivered_at=at(30))  # fmt: skip
    assert kinds([long]) == [("push_failing", "P")]
    recovered = row("P", last_failure={"at": at(40), "reason": "x"}, last_delivered_at=at(2))
    assert kinds([recovered]) == []  # delivered since


def test_a_certificate_expiring_within_the_days() -> None:
    soon = CertificateFacts("000.00.05.H07", "CN=A", "ab" * 32, NOW + timedelta(days=29))
    later = CertificateFacts("000.00.06.H07", "CN=B", "cd" * 32, NOW + timedelta(days=31))
    assert kinds([], certificates=[soon, later]) == [("cert_expiring", "ab" * 32)]


def test_entries_waiting_for_a_checkpoint_longer_than_expected() -> None:
    assert kinds([], uncovered=0, since=None) == []  # every entry is covered
    assert kinds([], uncovered=3, since=NOW - timedelta(minutes=9)) == []  # not yet due
    assert kinds([], uncovered=3, since=NOW - timedelta(minutes=11)) == [
        ("checkpoint_old", "ledger")
    ]
