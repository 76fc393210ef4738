"""The fault suite's private services (tests/faults/services.py), one RabbitMQ node and one
PostgreSQL for the session, a cluster of three RabbitMQ nodes for its case, and the gateways
each case starts on them. Every test here is marked ``faults``: ``pytest -m faults`` runs the
suite alone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gatewaystack import webhook
from harness import GatewayProcess, MakeGateway, Province, make_province
from services import (
    PostgresInstance,
    RabbitCluster,
    RabbitNode,
    postgres_available,
    rabbitmq_available,
)

from gateway.db.testing import create_scratch_schema, drop_scratch_schema

__all__ = ["webhook"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)


def _unavailable(reason: str) -> None:
    if os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + "; GATEWAY_TEST_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fault_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the suite's own, which its cases stop, kill and cut off."""
    if reason := rabbitmq_available():
        _unavailable(reason)
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"), f"gwfaults{os.getpid()}")
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """Three RabbitMQ nodes of the suite's own, clustered, which its case kills and stops;
    every node is stopped at the end, whatever happened."""
    if reason := rabbitmq_available():
        _unavailable(reason)
    cluster = RabbitCluster(tmp_path_factory.mktemp("cluster"), f"gwcluster{os.getpid()}")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def fault_postgres() -> Iterator[PostgresInstance]:
    """A PostgreSQL of the suite's own, which its cases restart."""
    if reason := postgres_available():
        _unavailable(reason)
    instance = PostgresInstance()
    try:
        instance.start()
        yield instance
    finally:
        instance.remove()


@pytest.fixture
async def make_gateway(
    tmp_path: Path,
    fault_postgres: PostgresInstance,
    webhook: tuple[object, str],
) -> AsyncIterator[MakeGateway]:
    """Start a gateway on a scratch schema of the private PostgreSQL (the broker's URL is
    the case's: the node's, a proxy's, or the cluster's), or ``beside`` another one (its
    database and bus namespace); stopped and its schema dropped at the end."""
    province: Province = make_province(tmp_path, webhook[1])
    started: list[GatewayProcess] = []

    async def make(
        amqp_url: str, workers: int = 1, beside: GatewayProcess | None = None, **env: str
    ) -> GatewayProcess:
        if beside is None:
            database_url, namespace = await create_scratch_schema(fault_postgres.url), None
        else:
            database_url, namespace = beside.database_url, beside.namespace
        log_name = f"serve-{len(started) + 1}.log" if started else "serve.log"
        gateway = GatewayProcess(
            province, database_url, amqp_url, workers, namespace, log_name, **env
        )
        started.append(gateway)
        await gateway.start()
        return gateway

    yield make
    for gateway in started:
        await gateway.stop()
    for database_url in dict.fromkeys(g.database_url for g in started):
        await drop_scratch_schema(database_url)
