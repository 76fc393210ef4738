"""The overview's chart: each minute's counts at their place, the scale from the busiest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.console.chart import HEIGHT, activity_chart
from gateway.ledger.entry import EventType
from gateway.ledger.query import Activity

START = datetime(2026, 12, 5, 0, 0, 30, tzinfo=UTC)
END = START + timedelta(minutes=3)


def test_counts_fall_in_their_minutes_and_the_busiest_is_the_top() -> None:
    minute = START.replace(second=0)
    chart = activity_chart(
        [
            Activity(minute, EventType.SUBMITTED, None, 4),
            Activity(minute + timedelta(minutes=2), EventType.SUBMITTED, None, 2),
            Activity(minute + timedelta(minutes=2), EventType.DELIVERED, None, 3),
            Activity(minute + timedelta(minutes=2), EventType.REJECTED, "xml_malformed", 9),
            Activity(minute - timedelta(minutes=5), EventType.SUBMITTED, None, 7),  # before
        ],
        START,
        END,
    )
    assert (chart.peak, chart.total_accepted, chart.total_delivered) == (4, 6, 3)
    heights = [float(p.split(",")[1]) for p in chart.accepted.split()]
    assert len(heights) == 4 and heights[0] == HEIGHT - (HEIGHT - 10)  # the top
    assert heights[1] == heights[3] == HEIGHT and heights[2] == HEIGHT - (HEIGHT - 10) / 2


def test_a_quiet_ledger_draws_flat_lines() -> None:
    chart = activity_chart([], START, END)
    assert chart.peak == 1 and chart.total_accepted == chart.total_delivered == 0
    assert {p.split(",")[1] for p in chart.delivered.split()} == {f"{HEIGHT:.1f}"}
