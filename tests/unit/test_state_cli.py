"""Commands that need the gateway's existing state refuse to create an empty one in the
current folder, and say where they looked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        "GATEWAY_HOME": str(tmp_path / "var"),
        "GATEWAY_DATABASE_URL": "",
        "GATEWAY_AMQP_URL": "",
    }
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_token_commands_need_the_gateway_database(tmp_path: Path) -> None:
    for args in (("tokens", "issue", "--unit", "000.00.05.H07"), ("tokens", "list")):
        code, out = run(tmp_path, *args)
        assert code == 2 and "no gateway database at" in out and "GATEWAY_HOME" in out
    assert not (tmp_path / "var").exists()


def test_bus_commands_need_the_local_bus_except_setup(tmp_path: Path) -> None:
    code, out = run(tmp_path, "bus", "status")
    assert code == 2 and "no local bus at" in out
    assert not (tmp_path / "var" / "bus.db").exists()
    assert run(tmp_path, "bus", "setup")[0] == 0
    assert run(tmp_path, "bus", "status")[0] == 0
