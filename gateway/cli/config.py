"""``gateway config show``: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click

from gateway.cli.common import echo_json, settings
from gateway.config import OTHER_VARIABLES, Secret, setting_sources, unknown_variables

_PASSWORD = re.compile(r"^([a-z0-9+.-]+://[^:/@]*:)[^@]*@", re.I)


def _values(section: Any, prefix: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        var = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(value):
            found |= _values(value, f"{var}_")
        elif isinstance(value, Secret):  # a URL: show where, never the password
            found[var] = _PASSWORD.sub(r"\1****@", value.reveal())
        elif isinstance(value, tuple):
            found[var] = ",".join(str(v) for v in value)
        else:
            found[var] = None if value is None else str(value)
    return found


@click.group()
def config() -> None:
    """The gateway's settings (GATEWAY_* variables and the GATEWAY_CONFIG file)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(as_json: bool) -> None:
    """Print every setting with its effective value and where it came from (environment,
    file, default). Passwords and other secrets are masked. Variables that name no setting
    are listed last.

    \b
      GATEWAY_HOME                 var                     default
      GATEWAY_DATABASE_URL         ********                environment
    """
    values = _values(settings(), "GATEWAY_")
    sources = setting_sources()
    unknown = unknown_variables()
    if as_json:
        echo_json(
            {
                "settings": {var: {"value": values[var], "source": sources[var]} for var in values},
                "unknown": unknown,
                "other": sorted(OTHER_VARIABLES),
            }
        )
        return
    for var, value in values.items():
        shown = "-" if value is None else value
        click.echo(f"{var:<34} {shown:<40} {sources[var]}")
    for var in unknown:
        click.echo(f"{var:<34} {'(not a setting: ignored)':<40} environment")
