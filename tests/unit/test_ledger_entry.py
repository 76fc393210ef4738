"""Ledger events and the canonical bytes from which each Merkle leaf is computed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ledger.entry import Entry, Event, EventType, canonical_bytes, parse_entry

T = datetime(2025, 1, 15, 8, 30, 0, 123456, tzinfo=UTC)


def test_canonical_bytes_are_sorted_compact_utf8_json_with_every_field() -> None:
    event = Event(
        EventType.STATUS,
        document="000.00.05.H07|000.00.05.H07,2025/01/15,12/UBND-VP",
        sender="000.01.05.H07",
        recipient="000.00.05.H07",
        code="03",
        details={"note": "Đã tiếp nhận", "attempt": 2},
    )
    expected = (
        '{"code":"03","details":{"attempt":2,"note":"Đã tiếp nhận"},'
        '"document":"000.00.05.H07|000.00.05.H07,2025/01/15,12/UBND-VP",'
        '"package_sha256":null,"recipient":"000.00.05.H07","sender":"000.01.05.H07",'
        '"seq":7,"time":"2025-01-15T08:30:00.123456Z","type":"status","v":1}'
    ).encode()
    entry = Entry(7, T, event)
    assert entry.data == expected == canonical_bytes(7, T, event)
    assert entry.leaf_hash == hashlib.sha256(b"\x00" + expected).digest()


def test_times_are_written_in_utc_whatever_the_zone_given() -> None:
    local = T.astimezone(timezone(timedelta(hours=7)))
    assert Entry(1, local, Event("queued")).data == Entry(1, T, Event("queued")).data
    with pytest.raises(ValueError, match="timezone-aware"):
        _ = Entry(1, T.replace(tzinfo=None), Event("queued")).data


def test_parse_entry_round_trips_and_refuses_anything_not_canonical() -> None:
    entry = Entry(3, T, Event(EventType.REJECTED, sender="000.00.05.H07", code="schema_invalid"))
    assert parse_entry(entry.data) == entry
    data = entry.data
    for bad in (
        data + b" ",
        data.replace(b'{"code"', b'{ "code"'),
        data.replace(b'"seq":3', b'"seq":3.0'),
        data.replace(b'"v":1', b'"v":2'),
        data.replace(b'"type":"rejected"', b'"type":"lost"'),
        data.replace(b'.123456Z"', b'Z"'),
        b"\xff" + data,
        b"[]",
    ):
        with pytest.raises(ValueError):
            parse_entry(bad)


@pytest.mark.parametrize(
    "fields",
    [
        {"document": ""},
        {"sender": "x" * 65},
        {"recipient": "bad\nline"},
        {"package_sha256": "AB" * 32},
        {"package_sha256": "ab" * 31},
        {"details": {"ratio": 0.5}},
        {"details": {1: "non-string key"}},
        {"details": {"blob": b"bytes"}},
        {"details": {"big": "x" * 5000}},
    ],
)
def test_invalid_events_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Event(EventType.SUBMITTED, **fields)  # type: ignore[arg-type]


def test_event_type_is_one_of_the_eleven() -> None:
    assert [t.value for t in EventType] == [
        "submitted", "rejected", "queued", "delivered", "retrying",
        "expired", "dead_lettered", "redriven", "status", "operator", "notified",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        Event("lost")  # type: ignore[arg-type]


text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@given(
    seq=st.integers(0, 2**62),
    kind=st.sampled_from(list(EventType)),
    document=st.none() | text,
    recipient=st.none() | text,
    details=st.dictionaries(text, json_values, max_size=4),
)
def test_any_event_round_trips_through_its_canonical_bytes(
    seq: int,
    kind: EventType,
    document: str | None,
    recipient: str | None,
    details: dict[str, object],
) -> None:
    entry = Entry(seq, T, Event(kind, document=document, recipient=recipient, details=details))
    assert parse_entry(entry.data).data == entry.data
