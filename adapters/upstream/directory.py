"""The remote directory: a link's ``getAgenciesList``, kept as the units behind that link
(``gw_remote_unit``), one version per synchronisation, each one an operator ledger event."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.upstream.client import AxisClient
from adapters.upstream.links import Link
from gateway.db.engine import write_transaction
from gateway.directory import Directory
from gateway.ledger import Event
from gateway.service import remote_store
from gateway.service.actions import Actor, operator_event
from gateway.service.remote_store import RemoteUnit


@dataclass(frozen=True)
class Synced:
    link: str
    version: int
    units: int  # kept: served by the link and not in our own directory
    listed: int  # what the upstream listed
    sha256: str  # of the kept units' codes, sorted, one per line
    at: datetime

    def event(self, actor: Actor) -> Event:
        return operator_event(
            "remote_units_sync",
            actor,
            link=self.link,
            version=self.version,
            units=self.units,
            listed=self.listed,
            units_sha256=self.sha256,
        )


def kept_units(
    link: Link, listed: list[dict[str, object]], local: Directory, version: int, at: datetime
) -> list[RemoteUnit]:
    """The listed units a link serves that are not ours (a unit of our directory is always
    delivered locally, whatever the upstream says)."""
    kept: dict[str, RemoteUnit] = {}
    for item in listed:
        code = str(item.get("code") or "").strip()
        if not code or code in local or not link.serves_code(code) or len(code) > 64:
            continue
        parent = str(item.get("pid") or "").strip() or None
        name = str(item.get("name") or code)
        deleted = item.get("deleted") is True or str(item.get("deleted")).lower() == "true"
        kept[code] = RemoteUnit(link.name, code, name, parent, deleted, version, at)
    return sorted(kept.values(), key=lambda u: u.code)


async def sync_units(engine: AsyncEngine, link: Link, local: Directory) -> Synced:
    """Fetch the link's directory and make it the link's remote units (a new version)."""
    async with aiohttp.ClientSession() as session:
        listed = await AxisClient(link, session).agencies()
    at = datetime.now(UTC)
    async with write_transaction(engine) as conn:
        version = await remote_store.version(conn, link.name) + 1
        units = kept_units(link, listed, local, version, at)
        await remote_store.replace_units(conn, link.name, units)
    digest = hashlib.sha256("\n".join(u.code for u in units).encode()).hexdigest()
    return Synced(link.name, version, len(units), len(listed), digest, at)
