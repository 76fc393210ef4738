"""``gateway units``: list, show and check the unit directory; add, change, suspend and
resume units (through a running gateway's API, or on the directory file)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    echo_json,
    exits,
    fail_environment,
    record_action,
    settings,
    with_database,
)
from gateway.directory import Directory, DirectoryInvalid, Unit, load_directory
from gateway.errors import ConfigError
from gateway.service.runtime import directory_file

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.client import GatewayClient

DIRECTORY_OPTION = click.option(
    "--directory",
    "directory_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Directory CSV file (default: GATEWAY_DIRECTORY, else var/directory.csv, else the "
    "bundled sample province).",
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
    """Show one unit, its parents and how many units sit below it; for a unit outside the
    directory, the upstream link it is behind. Exit 1 if CODE is unknown."""
    directory = open_directory(directory_file)
    unit = directory.get(code)
    if unit is None:
        _show_remote(code, as_json)
        return
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


def _show_remote(code: str, as_json: bool) -> None:
    """A unit behind a link: listed by the link's synchronised directory, or (before the
    first synchronisation) matching its patterns."""
    from adapters.upstream.links import load_links
    from gateway.service import remote_store

    try:
        link = load_links(settings().federation.links).route(code)
    except ConfigError as e:
        fail_environment(e.message)
    listed: list[remote_store.RemoteUnit] = []
    synced: set[str] = set()
    if link is not None:

        async def look(engine: AsyncEngine) -> None:
            async with engine.connect() as conn:
                synced.update(await remote_store.synced_links(conn, [link.name]))
                listed.extend(
                    u for u in await remote_store.units(conn, [code]) if u.link == link.name
                )

        with_database(look)
    if link is None or (link.name in synced and not listed):
        why = "" if link is None else f" nor in link {link.name}'s directory"
        click.echo(f"{code} is not in the directory{why}", err=True)
        sys.exit(EXIT_REJECTED)
    found = listed[0] if listed else None
    summary: dict[str, Any] = {
        "code": code,
        "local": False,
        "link": link.name,
        "upstream": link.url,
        "name": found.name if found else None,
        "parent_code": found.parent_code if found else None,
        "status": "suspended" if found is not None and found.deleted else "active",
        "listed": found is not None,
        "directory_version": found.version if found else None,
        "synced_at": found.synced_at.isoformat() if found else None,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{'code:':<12} {code}")
    click.echo(f"{'behind:':<12} link {link.name} ({link.url})")
    if found is None:
        click.echo(
            f"{'listed:':<12} no: the link's directory is not synchronised; "
            f"routed by its patterns ({', '.join(link.serves)})"
        )
        return
    click.echo(f"{'name:':<12} {found.name}")
    click.echo(f"{'parent:':<12} {found.parent_code or '-'}")
    click.echo(f"{'status:':<12} {summary['status']}")
    click.echo(
        f"{'listed:':<12} version {found.version}, "
        f"synchronised {found.synced_at:%Y-%m-%d %H:%M:%S}Z"
    )


@units.command("sync")
@click.option("--link", "name", required=True, help="The upstream link (GATEWAY_FEDERATION_LINKS).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def sync_units(name: str, as_json: bool) -> None:
    """Fetch an upstream link's directory (getAgenciesList) into the remote units: from then
    on a unit the link serves is addressable only if the link lists it. Each run is a new
    version, ledgered as an operator event (remote_units_sync)."""
    from adapters.upstream.client import UpstreamRefused, UpstreamUnavailable
    from adapters.upstream.directory import Synced
    from adapters.upstream.directory import sync_units as sync
    from adapters.upstream.links import load_links
    from gateway.service.actions import Actor

    config = settings()
    try:
        link = load_links(config.federation.links).named(name)
    except ConfigError as e:
        fail_environment(e.message)
    local = open_directory(None)
    done: list[Synced] = []

    async def work(engine: AsyncEngine) -> None:
        click.echo(f"asking {link.url} for its directory (getAgenciesList)…", err=True)
        try:
            done.append(await sync(engine, link, local))
        except (UpstreamRefused, UpstreamUnavailable) as e:
            fail_environment(f"link {link.name}: {e}")

    with_database(work)
    (synced,) = done
    record_action(synced.event(Actor.command_line()))
    if as_json:
        echo_json(
            {
                "link": synced.link,
                "version": synced.version,
                "units": synced.units,
                "listed": synced.listed,
                "units_sha256": synced.sha256,
                "synced_at": synced.at.isoformat(),
            }
        )
        return
    click.echo(
        f"link {synced.link}: directory version {synced.version}, {synced.units} units behind "
        f"the link (of {synced.listed} listed)"
    )


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


# -- changes: on the running gateway (--url, --token), else on the directory file ------------

URL_OPTION = click.option(
    "--url",
    envvar="GATEWAY_URL",
    show_envvar=True,
    help="A running gateway's base URL: the change goes through its API and takes effect at "
    "once. Without it the directory file is changed (a running gateway notices within seconds).",
)
TOKEN_OPTION = click.option(
    "--token", envvar="GATEWAY_TOKEN", show_envvar=True, help="An operator token (with --url)."
)


def _field_options(required: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def apply(f: Callable[..., None]) -> Callable[..., None]:
        options = [
            click.option("--name", required=required, help="The unit's name."),
            click.option("--parent", "parent_code", metavar="CODE", help="The parent unit."),
            click.option(
                "--level", type=click.IntRange(1, 4), required=required, help="1 (top) to 4."
            ),
            click.option(
                "--delivery",
                type=click.Choice(["pull", "push", "amqp"]),
                required=required,
                help="How the unit receives: its system pulls its inbox, the gateway pushes "
                "to --endpoint, or its system consumes its own AMQP queue.",
            ),
            click.option("--endpoint", help="The webhook URL of a push unit ('' to clear)."),
            click.option(
                "--pin",
                "pins",
                multiple=True,
                metavar="SHA256",
                help="A pinned signer certificate fingerprint (repeatable; '' to clear).",
            ),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def _values(pins: tuple[str, ...], **given: object) -> dict[str, str]:
    """The fields given on the command line, as the directory file writes them."""
    values = {name: str(value) for name, value in given.items() if value is not None}
    if pins:
        values["cert_sha256"] = ";".join(p for p in pins if p)
    return values


def _change(
    url: str | None,
    token: str | None,
    action: str,
    code: str,
    values: dict[str, str],
    as_json: bool,
    *,
    create: bool = False,
) -> None:
    if url:
        from gateway.cli.client import call

        def through_api(gw: GatewayClient) -> Awaitable[dict[str, Any]]:
            if action in ("unit_suspend", "unit_resume"):
                return gw.set_unit_active(code, action == "unit_resume")
            return gw.add_unit(code, values) if create else gw.update_unit(code, values)

        answer = call(url, token, through_api, as_json)
        unit, changed = answer["unit"], answer["changed"]
        reload = answer.get("reload")
        if reload is not None and not reload.get("ok"):
            click.echo(f"warning: the gateway did not reload: {reload.get('error')}", err=True)
    else:
        unit, changed = _change_file(action, code, values, create)
    if as_json:
        echo_json({"unit": unit, "changed": changed})
        return
    what = ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "nothing new"
    click.echo(f"{code}: {action.removeprefix('unit_')} ({what})")


def _change_file(
    action: str, code: str, values: dict[str, str], create: bool
) -> tuple[dict[str, object], dict[str, str]]:
    from gateway.directory.edit import change_unit
    from gateway.service.actions import Actor
    from gateway.service.admin import unit_event

    config = settings()
    path = directory_file(config, create=True, say=lambda text: click.echo(text, err=True))
    with exits():
        change = change_unit(path, code, values, create=create)
    if change.fields:
        record_action(unit_event(action, Actor.command_line(), change))
    return change.after.as_dict(), change.fields


@units.command("add")
@click.argument("code")
@_field_options(required=True)
@click.option(
    "--status", type=click.Choice(["active", "suspended"]), default="active", show_default=True
)
@URL_OPTION
@TOKEN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the unit as JSON.")
def add_unit(code: str, url: str | None, token: str | None, as_json: bool, **given: Any) -> None:
    """Add unit CODE to the directory. Checked like the directory file (code format, parent,
    level below the parent's, an endpoint for push units); a refused change changes nothing
    (exit 1). The change is a ledger event naming who made it.

    \b
      gateway units add 000.00.30.H07 --name "Sở Du lịch" --parent 000.00.00.H07 \\
          --level 2 --delivery pull --url http://127.0.0.1:8080 --token $OPERATOR
    """
    _change(url, token, "unit_add", code, _values(**given), as_json, create=True)


@units.command("update")
@click.argument("code")
@_field_options(required=False)
@URL_OPTION
@TOKEN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the unit as JSON.")
def update_unit(code: str, url: str | None, token: str | None, as_json: bool, **given: Any) -> None:
    """Change some fields of unit CODE (those given); the others stay as they are."""
    values = _values(**given)
    if not values:
        raise click.UsageError("give at least one field to change")
    _change(url, token, "unit_update", code, values, as_json)


@units.command("suspend")
@click.argument("code")
@URL_OPTION
@TOKEN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the unit as JSON.")
def suspend_unit(code: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Suspend unit CODE: packages from it or to it are refused until it is resumed."""
    _change(url, token, "unit_suspend", code, {"status": "suspended"}, as_json)


@units.command("resume")
@click.argument("code")
@URL_OPTION
@TOKEN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the unit as JSON.")
def resume_unit(code: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Make a suspended unit CODE active again."""
    _change(url, token, "unit_resume", code, {"status": "active"}, as_json)
