"""Queue, exchange and header names come from one pure function each."""

from __future__ import annotations

import pytest

from gateway.bus import naming as n
from gateway.errors import GatewayError


def test_names_of_the_topology() -> None:
    t = n.Topology()
    assert t.unit_queue("000.00.05.H07") == "gw.unit.000.00.05.H07"
    assert t.deliver_exchange == "gw.deliver"
    assert t.delay_exchange == "gw.delay"
    assert t.dead_queue == "gw.dead"
    assert t.delay_queue(30_000) == "gw.delay.30s"
    assert t.delay_queue(200) == "gw.delay.200ms"
    assert n.Topology("test1").unit_queue("G12") == "test1.unit.G12"


def test_unit_of_queue_inverts_unit_queue() -> None:
    t = n.Topology()
    assert t.unit_of_queue(t.unit_queue("vxp.saas.03")) == "vxp.saas.03"
    assert t.unit_of_queue("gw.dead") is None


@pytest.mark.parametrize("code", ["", "has space", "tab\tcode", "x" * 201, "nl\n"])
def test_codes_that_cannot_name_a_queue_are_refused(code: str) -> None:
    with pytest.raises(GatewayError) as e:
        n.check_unit_code(code)
    assert e.value.code == "organ_id_invalid"


def test_messy_real_codes_are_accepted() -> None:
    for code in ("G12", "vxp.saas.03", "002.00.20.H13"):
        assert n.check_unit_code(code) == code


def test_delays_must_be_positive() -> None:
    with pytest.raises(ValueError):
        n.Topology().delay_queue(0)


def test_delay_queues_dead_letter_back_into_the_deliver_exchange_at_least_once() -> None:
    t = n.Topology("ns")
    args = n.delay_queue_arguments(t, 30_000)
    assert args["x-message-ttl"] == 30_000
    assert args["x-dead-letter-exchange"] == "ns.deliver"
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert args["x-overflow"] == "reject-publish"  # required by at-least-once
    assert "x-dead-letter-routing-key" not in args  # keeps the unit code as routing key
    assert n.delay_binding_arguments(30_000) == {"x-match": "all", "gw-delay": "30000"}
    assert n.UNIT_QUEUE_ARGUMENTS["x-queue-type"] == "quorum"


def test_the_pure_modules_of_the_bus_do_no_io() -> None:
    import ast
    from pathlib import Path

    import gateway.bus

    forbidden = {"aio_pika", "aiormq", "aiosqlite", "sqlite3", "asyncio", "socket", "os"}
    root = Path(gateway.bus.__file__).parent
    for name in ("naming.py", "policy.py", "codec.py", "model.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in forbidden, f"{name} imports {module}"
