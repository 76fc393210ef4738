"""The national-axis façade's SQL: its connected systems, the signed requests it has seen,
and the inbox counts its counters answer. Apart from gateway.service.store (the exchange's
own) so that the façade can be read, changed or left out as one piece."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.service.models import (
    inbox_table,
    package_table,
    vxp_seen_table,
    vxp_system_table,
)
from gateway.service.transport import InboxState

_s = vxp_system_table.c
_seen = vxp_seen_table.c
_i = inbox_table.c
_p = package_table.c


@dataclass(frozen=True, slots=True)
class SystemRecord:
    system_id: str
    secret_encrypted: str
    created_at: datetime
    revoked_at: datetime | None


async def save_system(conn: AsyncConnection, system_id: str, encrypted: str, now: datetime) -> None:
    """The system's new secret: a first one, or one that replaces (and so revokes) the last."""
    await conn.execute(delete(vxp_system_table).where(_s.system_id == system_id))
    await conn.execute(
        insert(vxp_system_table),
        [{"system_id": system_id, "secret_encrypted": encrypted, "created_at": now}],
    )


async def system(conn: AsyncConnection, system_id: str) -> SystemRecord | None:
    query = select(_s.system_id, _s.secret_encrypted, _s.created_at, _s.revoked_at).where(
        _s.system_id == system_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else SystemRecord(*row)


async def systems(conn: AsyncConnection) -> list[SystemRecord]:
    query = select(_s.system_id, _s.secret_encrypted, _s.created_at, _s.revoked_at)
    return [SystemRecord(*r) for r in await conn.execute(query.order_by(_s.created_at))]


async def revoke_system(conn: AsyncConnection, system_id: str, now: datetime) -> int:
    result = await conn.execute(
        update(vxp_system_table)
        .where(_s.system_id == system_id, _s.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


async def remember(
    conn: AsyncConnection, system_id: str, stamp: str, signature: str, now: datetime
) -> bool:
    """Record a signed request; False when the same one was recorded before (a replay): the
    database decides, so two workers given the same request at once cannot both take it."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    row = {"system_id": system_id, "stamp": stamp, "signature": signature, "seen_at": now}
    result = await conn.execute(
        dialect_insert(vxp_seen_table).values(**row).on_conflict_do_nothing()
    )
    return bool(result.rowcount)


async def forget_before(conn: AsyncConnection, before: datetime) -> int:
    """Drop requests seen before ``before``: their timestamps are outside the window now."""
    result = await conn.execute(delete(vxp_seen_table).where(_seen.seen_at < before))
    return int(result.rowcount or 0)


async def inbox_count(conn: AsyncConnection, unit: str, kind: str) -> int:
    """How many copies of ``kind`` (document or status) wait in the unit's inbox."""
    query = (
        select(func.count())
        .select_from(inbox_table.join(package_table, _p.package_id == _i.package_id))
        .where(_i.recipient == unit, _i.state == InboxState.READY, _p.kind == kind)
    )
    return int(await conn.scalar(query) or 0)


@dataclass(frozen=True, slots=True)
class SentPackage:
    package_id: str
    kind: str
    sender: str
    document_key: str
    document_id: str
    subject: str | None
    submitted_at: datetime


async def sent_package(conn: AsyncConnection, package_id: str) -> SentPackage | None:
    query = select(
        _p.package_id,
        _p.kind,
        _p.sender,
        _p.document_key,
        _p.document_id,
        _p.subject,
        _p.submitted_at,
    ).where(_p.package_id == package_id)
    row = (await conn.execute(query)).first()
    return None if row is None else SentPackage(*row)
