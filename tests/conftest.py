"""Shared fixtures: test data paths and the real services (RabbitMQ, PostgreSQL).

Tests that need a service take the ``amqp_url`` or ``database_url`` fixture. Without the
service they skip, with a reason, on a laptop; with GATEWAY_TEST_REQUIRE_SERVICES=1 (as
.ci/run sets) they fail instead, so a CI run can never pass by skipping them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

DATA = Path(__file__).parent / "data"

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def services_required() -> bool:
    return os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 3
        ):
            return True
    except OSError:
        return False


def _service_url(variable: str, default: str, port: int, what: str) -> str:
    url = os.environ.get(variable) or default
    if not _reachable(url, port):
        message = f"{what} is not reachable at {urlsplit(url).netloc} ({variable})"
        if services_required():
            pytest.fail(message + "; GATEWAY_TEST_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _service_url("GATEWAY_TEST_AMQP_URL", DEFAULT_AMQP_URL, 5672, "RabbitMQ")


@pytest.fixture(scope="session")
def database_url() -> str:
    return _service_url("GATEWAY_TEST_DATABASE_URL", DEFAULT_DATABASE_URL, 5432, "PostgreSQL")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated scratch database, once on SQLite and once on PostgreSQL."""
    from gateway.db.testing import discard_database, prepare_database

    if request.param == "sqlite":
        base = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        base = request.getfixturevalue("database_url")
    scoped = await prepare_database(base)
    yield scoped
    await discard_database(scoped)
