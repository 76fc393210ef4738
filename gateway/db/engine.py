"""The database's engine and its one declarative ``Base`` (one ``MetaData``, one Alembic chain),
for SQLite (embedded default) or PostgreSQL (``GATEWAY_DATABASE_URL``).

Each owner declares its tables on :class:`Base` in a models module of its own and is listed in
:data:`MODEL_MODULES`; the database package, not any owner, knows them all. A change of schema
is a revision under ``gateway/db/migrations/versions/`` (docs/ledger.md, "Adding tables").
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from gateway.config import Settings
from gateway.db import sqlite
from gateway.errors import GatewayError

# The owners' modules that declare tables on Base; Alembic's env and `gateway db check` import
# them all.
MODEL_MODULES: tuple[str, ...] = ("gateway.ledger.models", "gateway.service.models")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

POOL_SIZE = 32  # connections kept open per engine
# SQLite's memory in one process, all connections together (page caches first): without it
# each pooled connection's cache fills to 32 MiB in turn, 2 GiB for a full pool.
SQLITE_MEMORY = 128 * 2**20

# Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE_OPTION = "gateway_write"
# Execution option for SQLite connections that only read rows that never change: no BEGIN
# (each SELECT is its own snapshot), which saves round trips to aiosqlite's thread.
READ_ONLY_OPTION = "gateway_read_only"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def load_models() -> MetaData:
    """Import every module of MODEL_MODULES so that Base.metadata knows all tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("database times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_url(settings: Settings) -> str:
    """GATEWAY_DATABASE_URL, or SQLite at ``<home>/ledger.db``."""
    if settings.database_url is not None:
        return settings.database_url.reveal()
    return f"sqlite+aiosqlite:///{settings.home / 'ledger.db'}"


CONNECT_TIMEOUT = 5.0  # seconds to reach the database server
OPERATION_TIMEOUT = 30.0  # seconds for one statement, or to wait for a pooled connection


def database_exists(settings: Settings) -> bool:
    """A database is configured (GATEWAY_DATABASE_URL), or the embedded one has been made."""
    return settings.database_url is not None or (settings.home / "ledger.db").exists()


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for a gateway database.

    SQLite: the parent folder is created, WAL journal (synchronous stays FULL: a committed
    event survives a power cut), a busy timeout, a 32 MiB page cache per connection within
    :data:`SQLITE_MEMORY` for the process, and transactions begin
    explicitly (``BEGIN IMMEDIATE`` for connections carrying :data:`WRITE_OPTION`) so that
    writers serialise at BEGIN instead of failing on lock upgrade. PostgreSQL (asyncpg): a
    ``search_path`` query parameter (``...?search_path=gateway``) selects the schema.
    """
    url = make_url(url)
    connect_timeout = kwargs.pop("connect_timeout", CONNECT_TIMEOUT)
    operation_timeout = kwargs.pop("operation_timeout", OPERATION_TIMEOUT)
    # Enough pooled connections for every request in flight: a checkout beyond the pool opens
    # a new connection (a server process on PostgreSQL) and closes it after one use.
    sqlite = url.get_backend_name() == "sqlite"
    in_memory = sqlite and (not url.database or url.database == ":memory:")
    if not in_memory and "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_SIZE)
    if sqlite:
        return _sqlite_engine(url, **kwargs)
    # A server that does not answer fails within these instead of hanging (asyncpg: the
    # connection, then each statement; the pool: waiting for a free connection).
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", connect_timeout)
    connect_args.setdefault("command_timeout", operation_timeout)
    kwargs.setdefault("pool_timeout", operation_timeout)
    if "search_path" in url.query:
        settings = dict(connect_args.get("server_settings", {}))
        settings["search_path"] = str(url.query["search_path"])
        connect_args["server_settings"] = settings
        url = url.difference_update_query(["search_path"])
    kwargs["connect_args"] = connect_args
    return create_async_engine(url, **kwargs)


# What a database that is down, unreachable or not answering raises (TimeoutError is an
# OSError): the callers turn these into ``database_unavailable``.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def lost_database(error: BaseException) -> bool:
    """Whether ``error``, raised while a request used the database, is the database going away
    (stopping, starting, unreachable, a connection broken) rather than a fault of the request
    or of the code: the request may be tried again."""
    if isinstance(error, sa_exc.DBAPIError):
        return (
            error.connection_invalidated
            or type(error) is sa_exc.DBAPIError  # the driver's own, e.g. "shutting down"
            # InternalError: a connection left mid-operation by the one that broke
            or isinstance(
                error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError)
            )
        )
    # asyncpg's own connection errors reach the caller unwrapped (refused, reset); the bus
    # and webhooks are not called from a request, so these are the database's
    return isinstance(error, (sa_exc.TimeoutError, ConnectionError))


def unavailable(settings: Settings, error: BaseException) -> GatewayError:
    """``database_unavailable`` naming the database (never its password) and the cause."""
    url = make_url(database_url(settings))
    sqlite = url.get_backend_name() == "sqlite"
    where = url.database if sqlite else f"{url.host}:{url.port or 5432}"
    cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, TimeoutError):
        cause = (
            f"no answer within {settings.connect_timeout} s (GATEWAY_CONNECT_TIMEOUT) or "
            f"{settings.operation_timeout} s (GATEWAY_OPERATION_TIMEOUT)"
        )
    return GatewayError("database_unavailable", f"the database {where} is unavailable: {cause}")


def open_engine(settings: Settings) -> AsyncEngine:
    """The configured database's engine, with the configured timeouts."""
    return create_engine(
        database_url(settings),
        connect_timeout=settings.connect_timeout,
        operation_timeout=settings.operation_timeout,
    )


def _sqlite_engine(url: URL, **kwargs: Any) -> AsyncEngine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _one_trip(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["async_creator_fn"] = sqlite.connect  # one trip per statement (sqlite.py)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB: indexes of a big ledger stay hot
        # ... but all connections together stay within SQLITE_MEMORY: past it SQLite reuses
        # cached pages instead of growing (the limit is the process's, not the connection's).
        cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_MEMORY}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION, False):
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN")

    return engine


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The engine for single-statement reads: no BEGIN/ROLLBACK round trips (autocommit on
    PostgreSQL, no BEGIN on SQLite); each statement sees a consistent snapshot of its own."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(**{READ_ONLY_OPTION: True})


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it holds the database write lock from BEGIN."""
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            yield conn
