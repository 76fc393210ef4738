"""The one place where the command line turns errors into exit codes (gateway.cli.common):
refused input exits 1 with its code, an unusable environment exits 2 with the reason."""

from __future__ import annotations

import pytest

from gateway.cli.common import exits
from gateway.client import ApiError, GatewayUnreachable
from gateway.errors import ConfigError, GatewayError


@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (GatewayError("unit_invalid", "level 9"), 1, "INVALID unit_invalid: level 9"),
        (ApiError(409, "unit_exists", "already there", {}), 1, "ERROR 409 unit_exists"),
        (ConfigError("no such file"), 2, "error: no such file"),
        (GatewayError("bus_unavailable", "RabbitMQ did not answer"), 2, "error: RabbitMQ"),
        (GatewayUnreachable("cannot reach the gateway"), 2, "error: cannot reach the gateway"),
        (TimeoutError(), 2, "error: the database"),
    ],
)
def test_errors_become_exit_codes(
    error: Exception, status: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped, exits():
        raise error
    assert stopped.value.code == status
    assert says in capsys.readouterr().err


def test_other_errors_are_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError), exits():
        1 / 0  # noqa: B018
