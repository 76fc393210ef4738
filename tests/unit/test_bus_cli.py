"""`gateway bus setup|status|dead|redrive` on the LocalBus (and setup/status on RabbitMQ)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.bus import ClaimStore, Delivery, LocalBus, Message, RetryPolicy
from gateway.cli import main

CSV = """code,name,parent_code,level,delivery,endpoint,status
000.00.00.H07,Province,,1,pull,,active
000.00.05.H07,Department,000.00.00.H07,2,pull,,active
000.00.06.H07,District,000.00.00.H07,2,amqp,,suspended
"""
UNIT = "000.00.05.H07"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "units.csv").write_text(CSV, encoding="utf-8")
    return {
        "GATEWAY_HOME": str(tmp_path / "var"),
        "GATEWAY_DIRECTORY": str(tmp_path / "units.csv"),
    }


def gateway(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["bus", *args], env=env)
    return result.exit_code, result.output


def gateway_stdout(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["bus", *args], env=env)
    return result.exit_code, result.stdout


def make_dead_letters(var: Path, count: int) -> None:
    async def run() -> None:
        policy = RetryPolicy.of_seconds([0.1], ttl=60)
        claims = ClaimStore(var / "claims")
        bus = LocalBus(var / "bus.db", claims=claims, policy=policy, poll_interval=0.05)
        async with bus:
            await bus.publish_many(Delivery(f"d{i}", f"doc{i}", UNIT, b"x") for i in range(count))

            async def refuse(message: Message) -> None:
                raise ValueError("no such inbox")

            sub = await bus.consume(UNIT, refuse)
            async with asyncio.timeout(10):
                while (await bus.counters([UNIT]))[UNIT].dead < count:
                    await asyncio.sleep(0.05)
            await sub.stop()

    asyncio.run(run())


def test_setup_declares_every_unit_of_the_directory(env: dict[str, str]) -> None:
    code, out = gateway(env, "setup")
    assert code == 0 and "declaring unit queues: 3/3" in out  # progress (plain: no terminal)
    assert "\ndeclared 3 unit queues on the local bus " in out
    code, out = gateway_stdout(env, "setup", "--json")
    assert json.loads(out)["declared"] == 3


def test_status_dead_and_redrive(env: dict[str, str]) -> None:
    assert gateway(env, "setup")[0] == 0
    make_dead_letters(Path(env["GATEWAY_HOME"]), 2)

    code, out = gateway(env, "status", "--unit", UNIT, "--json")
    assert code == 0
    assert json.loads(out) == {UNIT: {"depth": 0, "in_flight": 0, "retrying": 0, "dead": 2}}
    code, out = gateway(env, "status")
    lines = out.splitlines()
    assert lines[0].split() == ["UNIT", "DEPTH", "IN-FLIGHT", "RETRYING", "DEAD"]
    assert lines[1].split() == [UNIT, "0", "0", "0", "2"]  # idle units are left out
    assert lines[2].split() == ["total", "(3", "units)", "0", "0", "0", "2"]

    code, out = gateway(env, "dead", UNIT)
    assert code == 0 and "d0  doc0  attempt=1  dead  ValueError: no such inbox" in out

    code, out = gateway(env, "redrive", UNIT, "--id", "d1", "--id", "nope")
    assert code == 1 and "redrove 1 dead letter(s)" in out and "not found: nope" in out
    code, out = gateway_stdout(env, "redrive", UNIT, "--all", "--json")
    assert code == 0 and json.loads(out) == {"unit": UNIT, "redriven": 1, "not_found": []}
    code, out = gateway(env, "status", "--unit", UNIT, "--json")
    assert json.loads(out)[UNIT]["depth"] == 2


def test_redrive_needs_all_or_ids(env: dict[str, str]) -> None:
    assert gateway(env, "redrive", UNIT)[0] == 2
    assert gateway(env, "redrive", UNIT, "--all", "--id", "x")[0] == 2


def test_status_of_an_unknown_unit_warns_and_exits_1(env: dict[str, str]) -> None:
    assert gateway(env, "setup")[0] == 0
    code, out = gateway(env, "status", "--unit", "NOPE", "--json")
    assert code == 1 and "no bus queue for unit NOPE" in out


def test_an_unreachable_broker_is_an_environment_error(env: dict[str, str]) -> None:
    env = {**env, "GATEWAY_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    code, out = gateway(env, "setup")
    assert code == 2 and "cannot connect to RabbitMQ" in out and "guest:guest" not in out


@pytest.mark.amqp
def test_setup_and_status_on_rabbitmq(env: dict[str, str], amqp_url: str) -> None:
    namespace = f"cli{uuid.uuid4().hex[:8]}"
    env = {**env, "GATEWAY_AMQP_URL": amqp_url, "GATEWAY_BUS_NAMESPACE": namespace}
    try:
        code, out = gateway(env, "setup")
        assert code == 0 and "unit queues on RabbitMQ 127.0.0.1:5672" in out
        code, out = gateway(env, "status", "--json")
        assert json.loads(out)[UNIT] == {"depth": 0, "in_flight": None, "retrying": 0, "dead": 0}
    finally:
        from gateway.bus import open_bus
        from gateway.config import load_settings

        async def clean() -> None:
            bus = open_bus(load_settings(env))
            assert not isinstance(bus, LocalBus)
            await bus.destroy(["000.00.00.H07", UNIT, "000.00.06.H07"])

        asyncio.run(clean())
