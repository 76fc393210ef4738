"""Reloading the files a running gateway reads its world from: the unit directory, the trust
bundle and the CRL. A reload reads all three again and checks them whole; only when every one
is good does it swap them in (new units get their queue and consumer, changed ones a new
consumer, removed ones lose it), otherwise the gateway keeps what it had and says why. Reloads
come from SIGHUP, from ``POST /v1/admin/reload``, and from a watcher that notices a changed
file within seconds. Each reload, done or refused, is a ledger event naming who asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.directory import Directory, load_directory
from gateway.errors import ConfigError
from gateway.service.actions import Actor, operator_event
from gateway.service.core import Gateway
from gateway.service.delivery import Deliverer
from gateway.trust import TrustStore

log = logging.getLogger(__name__)

WATCH_SECONDS = 3.0  # how often the watcher looks at the files
_LISTED = 20  # unit codes named in a reload's ledger event, per kind of change


@dataclass(frozen=True)
class Sources:
    """Where the directory, the trust bundle and the CRL are read from."""

    directory: Path
    trust: Path
    crl: Path | None  # None: no revocation checking

    def stamp(self) -> tuple[tuple[int, int] | None, ...]:
        """Size and modification time of each file (None when absent): changes when they do."""
        return tuple(_stat(p) for p in (self.directory, self.trust, self.crl))

    def load(self) -> tuple[Directory, TrustStore, dict[str, str]]:
        """Read and check every file; raise ConfigError naming the one at fault. Returns the
        directory, the trust store and each file's SHA-256."""
        directory = load_directory(self.directory)
        crl = self.crl if self.crl is not None and self.crl.exists() else None
        trust = TrustStore.from_files(self.trust, crl)
        digests = {"directory": _sha256(self.directory), "trust": _sha256(self.trust)}
        if crl is not None:
            digests["crl"] = _sha256(crl)
        return directory, trust, digests


def _stat(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        s = path.stat()
    except OSError:
        return None
    return (s.st_mtime_ns, s.st_size)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    """What a reload found: the changes it made, or why it changed nothing."""

    ok: bool
    trigger: str  # api | signal | file | cli
    at: datetime
    error: str | None = None
    units: int = 0
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)  # name -> SHA-256 of what was loaded
    files_changed: tuple[str, ...] = ()  # the files whose content differs from before

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "trigger": self.trigger,
            "at": self.at.isoformat(),
            "error": self.error,
            "units": self.units,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "files": dict(self.files),
            "files_changed": list(self.files_changed),
        }


def unit_changes(
    old: Directory, new: Directory
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Codes added, removed and changed (any field) from ``old`` to ``new``."""
    before = {u.code: u for u in old}
    after = {u.code: u for u in new}
    added = tuple(c for c in after if c not in before)
    removed = tuple(c for c in before if c not in after)
    changed = tuple(c for c in after if c in before and after[c] != before[c])
    return added, removed, changed


class Reloader:
    """Reloads the sources into a running gateway; one reload at a time."""

    def __init__(
        self, sources: Sources, gateway: Gateway, deliverer: Deliverer, files: dict[str, str]
    ) -> None:
        """``files``: the SHA-256 of each file as the gateway loaded them at start."""
        self.sources = sources
        self.gateway = gateway
        self.deliverer = deliverer
        self._lock = asyncio.Lock()
        self._stamp = sources.stamp()
        self._files = files
        self.last: ReloadResult | None = None
        self.counts = {"ok": 0, "failed": 0}
        self.listeners: list[Callable[[ReloadResult], None]] = []

    async def reload(self, trigger: str, actor: Actor) -> ReloadResult:
        async with self._lock:
            result = await self._reload(trigger)
            self.last = result
            self.counts["ok" if result.ok else "failed"] += 1
            for listener in self.listeners:
                listener(result)
            await self._record(result, actor)
            return result

    async def _reload(self, trigger: str) -> ReloadResult:
        now = datetime.now(UTC)
        self._stamp = self.sources.stamp()
        try:
            directory, trust, files = await asyncio.to_thread(self.sources.load)
        except ConfigError as e:
            log.error("reload (%s) refused, the gateway keeps its current state: %s", trigger, e)
            return ReloadResult(False, trigger, now, error=e.message)
        old = self.gateway.directory
        added, removed, changed = unit_changes(old, directory)
        new_units = {u.code: u for u in directory}
        # A push unit's endpoint is read at each delivery; a new mode needs a new consumer.
        before = {u.code: u.delivery for u in old}
        moved = [new_units[c] for c in changed if before[c] != new_units[c].delivery]
        try:
            await self.gateway.bus.declare(added)
        except Exception as e:  # the bus is down: the new units would have no queue
            log.error("reload (%s) refused: cannot declare the new units' queues: %s", trigger, e)
            return ReloadResult(False, trigger, now, error=f"bus_unavailable: {e}"[:500])
        self.gateway.directory = directory
        self.gateway.trust = trust
        await self.deliverer.refresh([new_units[c] for c in added] + moved, removed)
        files_changed = tuple(k for k in files if files[k] != self._files.get(k))
        self._files = files
        log.info(
            "reloaded (%s): %d units (%d added, %d removed, %d changed); files changed: %s",
            trigger,
            len(directory),
            len(added),
            len(removed),
            len(changed),
            ", ".join(files_changed) or "none",
        )
        return ReloadResult(
            True,
            trigger,
            now,
            units=len(directory),
            added=added,
            removed=removed,
            changed=changed,
            files=files,
            files_changed=files_changed,
        )

    async def _record(self, result: ReloadResult, actor: Actor) -> None:
        details: dict[str, object] = {"trigger": result.trigger, "ok": result.ok}
        if result.ok:
            details |= {
                "units": result.units,
                "files": result.files,
                "files_changed": list(result.files_changed),
            }
            for kind in ("added", "removed", "changed"):
                codes: tuple[str, ...] = getattr(result, kind)
                if codes:
                    details[kind] = {"count": len(codes), "first": list(codes[:_LISTED])}
        else:
            details["error"] = (result.error or "")[:1000]
        try:
            await self.gateway.writer.record([operator_event("reload", actor, **details)])
        except Exception:
            log.exception("could not ledger the reload")

    async def watch(self, seconds: float = WATCH_SECONDS) -> None:
        """Reload when a file changes (its size or time), checked every ``seconds``."""
        while True:
            await asyncio.sleep(seconds)
            if self.sources.stamp() != self._stamp:
                try:
                    await self.reload("file", Actor.SYSTEM)
                except Exception:  # the watcher must outlive one bad reload
                    log.exception("reloading after a file changed failed")
