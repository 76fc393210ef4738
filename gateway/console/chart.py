"""The overview's chart, drawn on the server as a small SVG: documents accepted and copies
delivered per minute (no script, no library)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.ledger.entry import EventType
from gateway.ledger.query import Activity

WIDTH, HEIGHT = 720, 160


@dataclass(frozen=True)
class Chart:
    accepted: str  # SVG polyline points
    delivered: str
    peak: int  # the largest count of a minute: the top of the scale
    total_accepted: int
    total_delivered: int
    width: int = WIDTH
    height: int = HEIGHT


def _points(counts: list[int], peak: int) -> str:
    step = WIDTH / max(1, len(counts) - 1)
    return " ".join(
        f"{i * step:.1f},{HEIGHT - (c / peak) * (HEIGHT - 10):.1f}" for i, c in enumerate(counts)
    )


def activity_chart(activity: list[Activity], start: datetime, end: datetime) -> Chart:
    minutes = int((end - start).total_seconds() // 60) + 1
    first = start.replace(second=0, microsecond=0)
    accepted, delivered = [0] * minutes, [0] * minutes
    for a in activity:
        i = int((a.minute - first) / timedelta(minutes=1))
        if not 0 <= i < minutes:
            continue
        if a.type is EventType.SUBMITTED:
            accepted[i] += a.count
        elif a.type is EventType.DELIVERED:
            delivered[i] += a.count
    peak = max(1, *accepted, *delivered)
    return Chart(
        _points(accepted, peak),
        _points(delivered, peak),
        peak,
        sum(accepted),
        sum(delivered),
    )
