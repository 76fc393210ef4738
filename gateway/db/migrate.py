"""Schema migrations without an alembic.ini: upgrade the database, and detect drift between the
models (``Base.metadata``) and what the migrations built."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import create_engine, load_models

SCRIPT_LOCATION = "gateway.db:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migration chain has no head")
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest)."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def run(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(run)


@dataclass(frozen=True)
class SchemaCheck:
    current: str | None  # the database's revision
    head: str  # the newest revision of the chain
    differences: tuple[str, ...]  # model vs database differences, human-readable

    @property
    def ok(self) -> bool:
        return self.current == self.head and not self.differences


async def check_schema(engine: AsyncEngine) -> SchemaCheck:
    """Compare the database with the head revision and with the models."""
    metadata = load_models()

    def run(connection: Connection) -> tuple[str | None, list[Any]]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "target_metadata": metadata}
        )
        return context.get_current_revision(), compare_metadata(context, metadata)

    async with engine.connect() as conn:
        current, diffs = await conn.run_sync(run)
    return SchemaCheck(current, head_revision(), tuple(_describe(d) for d in diffs))


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # modify_* entries come grouped
        return "; ".join(_describe(d) for d in diff)
    op, *args = diff
    names = [getattr(a, "name", None) or str(a) for a in args if a is not None]
    return f"{op} {' '.join(str(n) for n in names[:3])}"


async def draft_revision(message: str, directory: Path | None = None) -> list[str]:
    """Write a new revision from the difference between the models and the head schema
    (autogenerate against a scratch SQLite database migrated to head) into the versions
    folder, or ``directory``. Returns the paths written; review the file before committing."""
    load_models()
    written: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'draft.db'}")
        try:
            await upgrade(engine)

            def run(connection: Connection) -> None:
                config = alembic_config(connection)
                if directory is not None:
                    versions = Path(__file__).parent / "migrations" / "versions"
                    config.set_main_option("path_separator", "os")
                    config.set_main_option(
                        "version_locations", os.pathsep.join([str(versions), str(directory)])
                    )
                scripts = command.revision(
                    config,
                    message,
                    autogenerate=True,
                    version_path=None if directory is None else str(directory),
                )
                for script in scripts if isinstance(scripts, list) else [scripts]:
                    if script is not None:
                        written.append(script.path)

            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()
    return written
