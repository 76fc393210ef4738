"""The SQL of the units behind upstream links (the remote directory) and of each link's
state as the operator sees it: what is waiting for it, failing, and when it last delivered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.service.models import delivery_table, remote_unit_table
from gateway.service.store import STOPPED, WAITING
from gateway.service.transport import Transport

_r = remote_unit_table.c
_d = delivery_table.c


@dataclass(frozen=True, slots=True)
class RemoteUnit:
    link: str
    code: str
    name: str
    parent_code: str | None
    deleted: bool
    version: int
    synced_at: datetime


async def replace_units(conn: AsyncConnection, link: str, units: Sequence[RemoteUnit]) -> None:
    """The link's directory is now ``units`` (all of one version)."""
    await conn.execute(delete(remote_unit_table).where(_r.link == link))
    if units:
        await conn.execute(
            insert(remote_unit_table),
            [
                {
                    "link": u.link,
                    "code": u.code,
                    "name": u.name,
                    "parent_code": u.parent_code,
                    "deleted": u.deleted,
                    "version": u.version,
                    "synced_at": u.synced_at,
                }
                for u in units
            ],
        )


async def version(conn: AsyncConnection, link: str) -> int:
    """The link's directory version: 0 before its first synchronisation."""
    found = await conn.scalar(select(func.max(_r.version)).where(_r.link == link))
    return int(found or 0)


async def synced_links(conn: AsyncConnection, links: Iterable[str]) -> set[str]:
    """Which of these links have a synchronised directory."""
    query = select(_r.link).where(_r.link.in_(list(links))).distinct()
    return {row[0] for row in await conn.execute(query)}


async def units(conn: AsyncConnection, codes: Iterable[str]) -> list[RemoteUnit]:
    """The remote units with these codes, behind whichever link lists them."""
    query = select(*remote_unit_table.c).where(_r.code.in_(list(codes)))
    return [RemoteUnit(*row) for row in await conn.execute(query)]


@dataclass(frozen=True, slots=True)
class LinkState:
    """A link's copies: waiting to be sent (accepted, queued, retrying), retrying among them,
    stopped (dead or expired, for an operator), and the last one the upstream took."""

    waiting: int = 0
    retrying: int = 0
    stopped: int = 0
    delivered: int = 0
    last_delivered_at: datetime | None = None
    last_reason: str | None = None


async def link_states(conn: AsyncConnection) -> dict[str, LinkState]:
    """Per link (its mode, ``link:<name>``), the state of its copies."""
    query = (
        select(_d.mode, _d.transport, func.count(), func.max(_d.transport_at))
        .where(_d.mode.like("link:%"))
        .group_by(_d.mode, _d.transport)
    )
    counts: dict[str, dict[str, tuple[int, datetime | None]]] = {}
    for mode, transport, count, last in await conn.execute(query):
        counts.setdefault(mode, {})[transport] = (int(count), last)
    states: dict[str, LinkState] = {}
    for mode, by_state in counts.items():
        reason = await conn.scalar(
            select(_d.reason)
            .where(
                _d.mode == mode,
                _d.reason.is_not(None),
                _d.transport != Transport.DELIVERED.value,
            )
            .order_by(_d.transport_at.desc())
            .limit(1)
        )
        states[mode] = LinkState(
            waiting=sum(by_state.get(t.value, (0, None))[0] for t in WAITING),
            retrying=by_state.get(Transport.RETRYING.value, (0, None))[0],
            stopped=sum(by_state.get(t.value, (0, None))[0] for t in STOPPED),
            delivered=by_state.get(Transport.DELIVERED.value, (0, None))[0],
            last_delivered_at=by_state.get(Transport.DELIVERED.value, (0, None))[1],
            last_reason=reason,
        )
    return states
