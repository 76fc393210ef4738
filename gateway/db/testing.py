"""Scratch databases for tests: a fresh PostgreSQL schema (dropped afterwards) or a SQLite file,
migrated to the newest revision. Tests share one PostgreSQL database, so each gets its own
schema through the ``search_path`` URL parameter understood by :func:`create_engine`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade


async def create_scratch_schema(url: str) -> str:
    """Create an empty schema in the PostgreSQL database of ``url``; return a URL using it."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()
    return make_url(url).update_query_dict({"search_path": schema}).render_as_string(False)


async def drop_scratch_schema(scoped_url: str) -> None:
    """Drop the schema named by ``scoped_url``'s search_path, with everything in it."""
    url = make_url(scoped_url)
    schema = str(url.query["search_path"])
    if not schema.startswith("test_"):
        raise ValueError(f"refusing to drop schema {schema!r}: not a scratch schema")
    engine = create_engine(url.difference_update_query(["search_path"]))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


async def prepare_database(url: str) -> str:
    """A migrated scratch database for ``url``: a new schema on PostgreSQL, the URL itself
    (a file the caller owns) on SQLite. Returns the URL to use."""
    sqlite = make_url(url).get_backend_name() == "sqlite"
    scoped = url if sqlite else await create_scratch_schema(url)
    engine = create_engine(scoped)
    try:
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        await discard_database(scoped)  # never leave a half-made schema behind
        raise
    await engine.dispose()
    return scoped


async def discard_database(scoped_url: str) -> None:
    if make_url(scoped_url).get_backend_name() != "sqlite":
        await drop_scratch_schema(scoped_url)


@asynccontextmanager
async def scratch_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated scratch database, discarded on exit."""
    scoped = await prepare_database(url)
    engine = create_engine(scoped)
    try:
        yield engine
    finally:
        await engine.dispose()
        await discard_database(scoped)
