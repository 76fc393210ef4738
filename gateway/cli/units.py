"""``gateway units``: list, show and check the unit directory."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from gateway.cli.common import EXIT_OK, EXIT_REJECTED, echo_json, fail_environment, settings
from gateway.directory import Directory, DirectoryInvalid, Unit, load_directory
from gateway.errors import ConfigError
from gateway.service.runtime import directory_file

DIRECTORY_OPTION = click.option(
    "--directory",
    "directory_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Directory CSV file (default: GATEWAY_DIRECTORY, else the bundled sample province).",
)


def open_directory(path: Path | None) -> Directory:
    """The directory a command works on; exit 2 when it cannot be loaded."""
    if path is None:
        path = directory_file(settings())
    try:
        return load_directory(path)
    except ConfigError as e:
        fail_environment(e.message)


def _line(unit: Unit) -> str:
    flags = "" if unit.active else "  [suspended]"
    return f"{unit.code}  L{unit.level}  {unit.delivery.value:<4}  {unit.name}{flags}"


@click.group()
def units() -> None:
    """The unit directory: codes, names, hierarchy, delivery modes and endpoints."""


@units.command("list")
@DIRECTORY_OPTION
@click.option("--parent", metavar="CODE", help="Only the units directly under CODE.")
@click.option("--recursive", "-r", is_flag=True, help="With --parent: every unit below CODE.")
@click.option("--level", type=click.IntRange(1, 4), help="Only the units of this level.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of units.")
def list_units(
    directory_file: Path | None,
    parent: str | None,
    recursive: bool,
    level: int | None,
    as_json: bool,
) -> None:
    """List units in file order, one per line: code, level, delivery mode and name."""
    directory = open_directory(directory_file)
    selected: tuple[Unit, ...] | Directory = directory
    if parent is not None:
        if parent not in directory:
            fail_environment(f"{parent} is not in the directory")
        selected = directory.descendants(parent) if recursive else directory.children(parent)
    chosen = [u for u in selected if level is None or u.level == level]
    if as_json:
        echo_json([u.as_dict() for u in chosen])
        return
    for unit in chosen:
        click.echo(_line(unit))


@units.command("show")
@DIRECTORY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.argument("code")
def show_unit(directory_file: Path | None, as_json: bool, code: str) -> None:
    """Show one unit, its parents and how many units sit below it. Exit 1 if CODE is unknown."""
    directory = open_directory(directory_file)
    unit = directory.get(code)
    if unit is None:
        click.echo(f"{code} is not in the directory", err=True)
        sys.exit(EXIT_REJECTED)
    summary = unit.as_dict()
    summary["parents"] = [{"code": p.code, "name": p.name} for p in directory.ancestors(code)]
    summary["children"] = len(directory.children(code))
    summary["descendants"] = len(directory.descendants(code))
    if as_json:
        echo_json(summary)
        return
    for key in ("code", "name", "level", "delivery", "endpoint", "status"):
        click.echo(f"{key + ':':<12} {summary[key] if summary[key] is not None else '-'}")
    click.echo(f"{'pins:':<12} {', '.join(unit.cert_sha256) or '-'}")
    for p in directory.ancestors(code):
        click.echo(f"{'parent:':<12} {p.code}  {p.name}")
    click.echo(f"{'below:':<12} {summary['children']} children, {summary['descendants']} in all")


@units.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_directory(file: Path) -> None:
    """Check a directory file: columns, codes, parents, cycles, delivery modes, endpoints and
    pins. Lists every problem with its line and exits 1 if there is any."""
    try:
        directory = load_directory(file)
    except DirectoryInvalid as e:
        for problem in e.problems:
            click.echo(f"{file}: {problem}")
        click.echo(f"INVALID {file}: {len(e.problems)} problem(s)")
        sys.exit(EXIT_REJECTED)
    except ConfigError as e:
        fail_environment(e.message)
    levels = Counter(u.level for u in directory)
    modes = Counter(u.delivery.value for u in directory)
    suspended = sum(1 for u in directory if not u.active)
    click.echo(
        f"OK {file}: {len(directory)} units "
        f"(levels {', '.join(f'{k}: {v}' for k, v in sorted(levels.items()))}; "
        f"{', '.join(f'{k} {v}' for k, v in sorted(modes.items()))}; {suspended} suspended)"
    )
    sys.exit(EXIT_OK)
