"""Alerts: what an operator should look at now, from the backlog, the certificates and the
ledger's latest checkpoint, against the thresholds of ``AlertSettings``. The rules are a pure
function (:func:`alerts_of`); :func:`current_alerts` gathers their inputs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import AlertSettings
from gateway.service.certificates import CertificateFacts, Certificates
from gateway.service.runtime import Runtime
from gateway.service.views import backlog_view


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: its kind (a stable snake_case word), what it concerns (a unit code, a
    certificate fingerprint, ``ledger``), since when, and a sentence for people."""

    kind: str  # push_failing | copy_waiting | dead_letters | cert_expiring | checkpoint_old
    subject: str
    since: datetime | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "since": self.since.isoformat() if self.since else None,
            "message": self.message,
        }


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def is_failing(row: dict[str, Any]) -> bool:
    """A push unit's backlog row whose last failure is newer than its last delivery."""
    failure = row.get("last_failure")
    if not failure:
        return False
    delivered = _time(row.get("last_delivered_at"))
    return delivered is None or datetime.fromisoformat(failure["at"]) > delivered


def alerts_of(
    limits: AlertSettings,
    backlog: dict[str, Any],
    certificates: Iterable[CertificateFacts],
    uncovered: int,
    uncovered_since: datetime | None,
    now: datetime,
) -> list[Alert]:
    """The alerts raised by these facts: ``backlog`` as :func:`backlog_view` gives it; the
    ledger's entries no signed checkpoint covers yet, and the time of the first of them."""
    found: list[Alert] = []
    for row in backlog["units"]:
        unit = row["unit"]
        if is_failing(row):
            failure = row["last_failure"]
            delivered = _time(row.get("last_delivered_at"))
            # failing since the later of its last delivery and its oldest waiting copy
            since = _time(row["oldest_waiting_at"]) or _time(failure["at"])
            if delivered is not None and since is not None and delivered > since:
                since = delivered
            if since is not None and now - since > timedelta(minutes=limits.push_failing_minutes):
                found.append(
                    Alert(
                        "push_failing",
                        unit,
                        since,
                        f"the push endpoint of {unit} has failed since {since:%Y-%m-%d %H:%M}Z: "
                        f"{failure['reason'] or 'no reason given'}",
                    )
                )
        oldest = _time(row["oldest_waiting_at"])
        if oldest is not None and now - oldest > timedelta(minutes=limits.waiting_minutes):
            found.append(
                Alert(
                    "copy_waiting",
                    unit,
                    oldest,
                    f"{row['waiting']} copies for {unit} wait, the oldest since "
                    f"{oldest:%Y-%m-%d %H:%M}Z",
                )
            )
        if row["dead"] or row["expired"]:
            found.append(
                Alert(
                    "dead_letters",
                    unit,
                    None,
                    f"{row['dead']} dead and {row['expired']} expired copies for {unit} "
                    "wait for an operator",
                )
            )
    horizon = now + timedelta(days=limits.cert_days)
    for cert in certificates:
        if cert.not_after <= horizon:
            found.append(
                Alert(
                    "cert_expiring",
                    cert.sha256,
                    cert.not_after,
                    f"the certificate of {cert.owner} ({cert.subject}) expires on "
                    f"{cert.not_after:%Y-%m-%d}",
                )
            )
    stale = timedelta(minutes=limits.checkpoint_minutes)
    if uncovered and uncovered_since is not None and now - uncovered_since > stale:
        found.append(
            Alert(
                "checkpoint_old",
                "ledger",
                uncovered_since,
                f"{uncovered} ledger entries, the first of {uncovered_since:%Y-%m-%d %H:%M}Z, "
                "are not covered by a signed checkpoint",
            )
        )
    return found


async def current_alerts(
    runtime: Runtime, certificates: Iterable[CertificateFacts], now: datetime | None = None
) -> tuple[list[Alert], dict[str, Any]]:
    """The alerts now, and the backlog they were read from (the overview shows both)."""
    now = now or datetime.now(UTC)
    backlog = await backlog_view(runtime.ledger.engine, runtime.gateway.directory, now=now)
    ledger = runtime.ledger
    latest = await ledger.latest_checkpoint()
    covered = latest.tree_size if latest else 0
    size = await ledger.size()
    # the first entry no checkpoint covers: when a checkpoint became due (one read by key)
    since = (await ledger.entry(covered)).time if size > covered else None
    found = alerts_of(runtime.settings.alerts, backlog, certificates, size - covered, since, now)
    return found, backlog


def watched_certificates(certificates: Certificates, runtime: Runtime) -> list[CertificateFacts]:
    """The trust bundle's certificates and every unit's the gateway holds a copy of."""
    found = list(certificates.bundle())
    for unit in runtime.gateway.directory:
        cert = certificates.of_unit(unit.code)
        if cert is not None:
            found.append(cert)
    return found
