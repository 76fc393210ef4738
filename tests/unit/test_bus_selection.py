"""open_bus: GATEWAY_AMQP_URL set selects AmqpBus, unset the LocalBus under home."""

from __future__ import annotations

from pathlib import Path

from gateway.bus import AmqpBus, LocalBus, open_bus
from gateway.config import load_settings


def test_without_an_amqp_url_the_local_bus_lives_under_var_dir(tmp_path: Path) -> None:
    settings = load_settings({"GATEWAY_HOME": str(tmp_path)})
    bus = open_bus(settings)
    assert isinstance(bus, LocalBus)
    assert bus.path == tmp_path / "bus.db"
    assert bus.claims.root == tmp_path / "claims"
    assert bus.policy.normal.delays_ms == (30_000, 120_000, 600_000, 3_600_000)


def test_an_amqp_url_selects_the_amqp_bus_with_the_bus_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "GATEWAY_AMQP_URL": "amqp://user:secret@broker:5672/",
            "GATEWAY_HOME": str(tmp_path),
            "GATEWAY_BUS_NAMESPACE": "prov",
            "GATEWAY_BUS_RETRY_SCHEDULE": "5,10",
            "GATEWAY_BUS_PUBLISH_WINDOW": "64",
        }
    )
    bus = open_bus(settings)
    assert isinstance(bus, AmqpBus)
    assert bus.url == "amqp://user:secret@broker:5672/"
    assert bus.topology.unit_queue("G12") == "prov.unit.G12"
    assert bus.policy.normal.delays_ms == (5000, 10000)
    assert bus.publish_window == 64


async def test_the_local_bus_keeps_confirmed_deliveries_across_a_restart(tmp_path: Path) -> None:
    from gateway.bus import Delivery

    settings = load_settings({"GATEWAY_HOME": str(tmp_path)})
    async with open_bus(settings) as bus:
        await bus.declare(["A"])
        await bus.publish(Delivery("d1", "doc", "A", b"x"))
    async with open_bus(settings) as bus:
        assert (await bus.counters(["A"]))["A"].depth == 1


def test_an_amqp_url_with_several_hosts_gives_the_bus_each_node(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "GATEWAY_AMQP_URL": "amqp://gw:secret@rabbit1:5672,rabbit2,rabbit3/",
            "GATEWAY_HOME": str(tmp_path),
        }
    )
    bus = open_bus(settings)
    assert isinstance(bus, AmqpBus)
    assert [h.url for h in bus.hosts] == [
        "amqp://gw:secret@rabbit1:5672/",
        "amqp://gw:secret@rabbit2/",
        "amqp://gw:secret@rabbit3/",
    ]
    assert bus.where == "RabbitMQ at rabbit1:5672, rabbit2:5672, rabbit3:5672 (a cluster)"
