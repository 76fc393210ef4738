"""Where each recipient's copy goes: a unit of the directory by its delivery mode, any other
unit through the upstream link that serves it (``link:<name>``), and what the bus carries for
each; unknown and suspended recipients refuse the package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.upstream.links import QUEUE_PREFIX, Link, Links
from gateway.bus import Delivery
from gateway.directory import DeliveryMode, Directory, Unit, UnitStatus
from gateway.errors import CodeName, PackageRejected
from gateway.service import remote_store

# The bus header that names the unit a copy queued for an upstream link is for (the queue is
# the link's, shared by every unit behind it).
UPSTREAM_TO = "upstream-to"


class Rejected(PackageRejected):
    """A refusal with extra problem members (e.g. the unknown recipients)."""

    def __init__(self, code: CodeName, message: str, **extra: Any) -> None:
        super().__init__(code, message)
        self.extra = extra


def remote_sender(link: Link) -> Callable[[str], Unit | None]:
    """The directory's answer for a sender behind ``link``: a unit the link vouches for, whose
    certificate must name it like any unit's (no pins: they are the other side's business)."""

    def guest(code: str) -> Unit | None:
        if not link.serves_code(code):
            return None
        name = f"behind link {link.name}"
        return Unit(code, name, None, 1, DeliveryMode.PULL, None, UnitStatus.ACTIVE)

    return guest


def bus_delivery(
    delivery_id: str, key: str, recipient: str, mode: str, body: bytes, priority: int
) -> Delivery:
    """A copy for the bus: on its unit's queue, or on its link's with the unit named."""
    if mode.startswith(QUEUE_PREFIX):
        return Delivery(delivery_id, key, mode, body, priority, {UPSTREAM_TO: recipient})
    return Delivery(delivery_id, key, recipient, body, priority)


async def route(
    directory: Directory,
    links: Links,
    engine: AsyncEngine,
    codes: Sequence[str],
    origin: Link | None,
    conn: AsyncConnection | None = None,
) -> dict[str, str]:
    """Delivery mode per recipient. A unit of the directory is always delivered locally; what
    arrived from a link (``origin``) goes to our own units only. The remote units are read
    on ``conn`` (or a connection of ``engine``) only when some recipient is outside."""
    outside = [c for c in codes if c not in directory]
    remote: dict[str, str] = {}
    deleted: list[str] = []
    if outside and origin is None and len(links):
        if conn is None:
            async with engine.connect() as own:
                remote, deleted = await _remote_routes(own, links, outside)
        else:
            remote, deleted = await _remote_routes(conn, links, outside)
    unknown = [c for c in outside if c not in remote and c not in deleted]
    if unknown:
        raise Rejected(
            "unknown_recipient",
            f"not in the unit directory: {', '.join(unknown)}; nothing was queued",
            recipients=unknown,
        )
    units = {c: u for c in codes if c in directory and (u := directory.get(c)) is not None}
    suspended = [c for c, u in units.items() if not u.active] + deleted
    if suspended:
        raise Rejected(
            "recipient_suspended",
            f"suspended: {', '.join(suspended)}; nothing was queued",
            recipients=suspended,
        )
    return {c: str(units[c].delivery) if c in units else remote[c] for c in codes}


async def _remote_routes(
    conn: AsyncConnection, links: Links, codes: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """The link mode of each code a link serves (once a link's directory is synchronised,
    only the units it lists), and the codes it lists as deleted."""
    serving = {c: link for c in codes if (link := links.route(c)) is not None}
    if not serving:
        return {}, []
    synced = await remote_store.synced_links(conn, {link.name for link in serving.values()})
    listed = {
        (u.link, u.code): u for u in await remote_store.units(conn, serving) if u.link in synced
    }
    routes: dict[str, str] = {}
    deleted: list[str] = []
    for code, link in serving.items():
        unit = listed.get((link.name, code))
        if link.name not in synced or (unit is not None and not unit.deleted):
            routes[code] = link.queue
        elif unit is not None:
            deleted.append(code)
    return routes, deleted
