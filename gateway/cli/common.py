"""Helpers shared by the subcommands: settings, input files, JSON output, exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from gateway.config import Settings, load_settings
from gateway.errors import ConfigError

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def fail_environment(message: str) -> NoReturn:
    """Stop with exit code 2: the command cannot run in this environment."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        fail_environment(e.message)


def read_input(path: str) -> bytes:
    """The bytes of a file argument; '-' is standard input."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        fail_environment(f"cannot read {path}: {e.strerror}")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


PROFILE_OPTION = click.option(
    "--profile",
    type=click.Choice(["strict", "compat"]),
    default="strict",
    show_default=True,
    help="strict: units of this gateway, every deviation rejected. "
    "compat: packets relayed from the national axis or legacy systems; deviations are "
    "listed as warnings.",
)

FILES_ARGUMENT = click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
