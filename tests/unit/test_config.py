"""Settings: defaults, environment and TOML, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import Secret, load_settings, setting_sources, unknown_variables
from gateway.errors import ConfigError


def test_defaults_are_the_embedded_gateway() -> None:
    s = load_settings({})
    assert s.amqp_url is None and s.database_url is None
    assert s.home == Path("var")
    assert s.envelope.max_bytes == 100 * 1024 * 1024
    assert s.bus.retry_schedule == (30, 120, 600, 3600)
    assert s.bus.ttl == 24 * 3600


def test_environment_sets_sections_and_top_level() -> None:
    s = load_settings(
        {
            "GATEWAY_AMQP_URL": "amqp://u:p@host/",
            "GATEWAY_BUS_RETRY_SCHEDULE": "1, 2,3",
            "GATEWAY_ENVELOPE_MAX_BYTES": "1024",
            "GATEWAY_KEYS": "/etc/gateway/keys",
        }
    )
    assert s.amqp_url == "amqp://u:p@host/"
    assert s.bus.retry_schedule == (1, 2, 3)
    assert s.envelope.max_bytes == 1024
    assert s.keys == Path("/etc/gateway/keys")


def test_the_facade_is_off_unless_enabled_by_a_word_or_a_toml_boolean(tmp_path: Path) -> None:
    assert load_settings({}).vxp.enabled is False
    for word, enabled in (("true", True), ("ON", True), ("0", False), ("no", False)):
        assert load_settings({"GATEWAY_VXP_ENABLED": word}).vxp.enabled is enabled
    path = tmp_path / "gateway.toml"
    path.write_text("[vxp]\nenabled = true\nclock_skew = 120\n")
    s = load_settings({"GATEWAY_CONFIG": str(path)})
    assert (s.vxp.enabled, s.vxp.clock_skew) == (True, 120)


def test_secrets_do_not_show_in_repr() -> None:
    s = load_settings({"GATEWAY_DATABASE_URL": "postgresql://u:hunter2@db/x"})
    assert "hunter2" not in repr(s)
    assert isinstance(s.database_url, Secret)
    assert s.database_url.reveal() == "postgresql://u:hunter2@db/x"


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('home = "/srv/gw"\n[bus]\nttl = 600\nretry_schedule = [5, 10]\n')
    s = load_settings({"GATEWAY_CONFIG": str(path), "GATEWAY_BUS_TTL": "900"})
    assert s.home == Path("/srv/gw")
    assert s.bus.ttl == 900
    assert s.bus.retry_schedule == (5, 10)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_BUS_TTL": "soon"}, "GATEWAY_BUS_TTL"),
        ({"GATEWAY_BUS_TTL": "0"}, "GATEWAY_BUS_TTL"),
        ({"GATEWAY_BUS_RETRY_SCHEDULE": "1,x"}, "GATEWAY_BUS_RETRY_SCHEDULE"),
        ({"GATEWAY_VXP_ENABLED": "maybe"}, "GATEWAY_VXP_ENABLED"),
        ({"GATEWAY_VXP_CLOCK_SKEW": "0"}, "GATEWAY_VXP_CLOCK_SKEW"),
        ({"GATEWAY_API_LONG_POLL": "-1"}, "GATEWAY_API_LONG_POLL"),
        ({"GATEWAY_CONFIG": "/nonexistent.toml"}, "GATEWAY_CONFIG"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert named in caught.value.message


def test_a_zero_that_means_no_cap_or_no_wait_is_taken() -> None:
    settings = load_settings(
        {"GATEWAY_API_CONNECTIONS_PER_ADDRESS": "0", "GATEWAY_API_LONG_POLL": "0"}
    )
    assert (settings.api.connections_per_address, settings.api.long_poll) == (0, 0)


def test_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[bus]\nttl_seconds = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_CONFIG": str(path)})
    assert "GATEWAY_BUS_TTL_SECONDS" in caught.value.message


def test_where_each_setting_comes_from(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[bus]\nttl = 60\n", encoding="utf-8")
    sources = setting_sources(
        {"GATEWAY_CONFIG": str(config), "GATEWAY_AMQP_URL": "amqp://x", "GATEWAY_BUS_TTL": ""}
    )
    assert sources["GATEWAY_AMQP_URL"] == "environment"
    assert sources["GATEWAY_BUS_TTL"] == "file"  # an empty variable does not count
    assert sources["GATEWAY_LEDGER_ORIGIN"] == "default"


def test_a_variable_that_names_no_setting_is_reported() -> None:
    env = {
        "GATEWAY_BUS_TLL": "5",
        "GATEWAY_URL": "http://x",
        "GATEWAY_TEST_AMQP_URL": "amqp://y",
        "GATEWAY_BUS_TTL": "5",
    }
    assert unknown_variables(env) == ["GATEWAY_BUS_TLL"]
    result = CliRunner().invoke(main, ["units", "show", "000.00.00.H07"], env=env)
    assert result.exit_code == 0
    assert "warning: GATEWAY_BUS_TLL is not a gateway setting (ignored)" in result.output
    assert "did you mean GATEWAY_BUS_TTL" in result.output


def test_config_show_names_each_source_and_hides_passwords() -> None:
    env = {
        "GATEWAY_DATABASE_URL": "postgresql+asyncpg://gw:s3cret@db.example/gateway",
        "GATEWAY_BUS_TTL": "600",
        "GATEWAY_BUS_TLL": "5",
    }
    result = CliRunner().invoke(main, ["config", "show"], env=env)
    assert result.exit_code == 0 and "s3cret" not in result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert lines["GATEWAY_DATABASE_URL"] == [
        "postgresql+asyncpg://gw:****@db.example/gateway",
        "environment",
    ]
    assert lines["GATEWAY_BUS_TTL"] == ["600", "environment"]
    assert lines["GATEWAY_HOME"] == ["var", "default"]
    assert lines["GATEWAY_BUS_TLL"][-1] == "environment"
