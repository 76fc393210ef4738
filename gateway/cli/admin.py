"""``gateway admin``: operator actions on a running gateway, through its API with an operator
token, so that each is a ledger event naming that token."""

from __future__ import annotations

import sys

import click

from gateway.cli.client import JSON_OPTION, TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import EXIT_OK, EXIT_REJECTED, echo_json


@click.group()
def admin() -> None:
    """Operator actions on a running gateway (--url and an operator --token)."""


@admin.command("reload")
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def reload(url: str | None, token: str | None, as_json: bool) -> None:
    """Make the gateway read its directory, trust bundle and CRL again (as SIGHUP does, and
    as it does by itself within seconds of a file changing). Exit 1 if a file does not pass
    its checks: the gateway then keeps what it had.

    \b
      reloaded: 809 units (1 added, 0 removed, 0 changed); files changed: directory
    """
    result = call(url, token, lambda gw: gw.reload(), as_json)
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"reloaded: {result['units']} units ({len(result['added'])} added, "
        f"{len(result['removed'])} removed, {len(result['changed'])} changed); "
        f"files changed: {', '.join(result['files_changed']) or 'none'}"
    )


@admin.command("redrive")
@click.argument("code")
@click.option("--all", "redrive_all", is_flag=True, help="Every dead or expired copy of the unit.")
@click.option("--id", "ids", multiple=True, metavar="ID", help="A delivery id (repeatable).")
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def redrive(
    code: str,
    redrive_all: bool,
    ids: tuple[str, ...],
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Put unit CODE's dead or expired copies back (on its queue, or in its pull inbox) with
    attempt 1 and a fresh time-to-live; CODE link:NAME: the dead or expired copies of upstream
    link NAME. Exit 1 when nothing was redriven.

    \b
      redrove 2 copies of 000.00.05.H07
    """
    if redrive_all == bool(ids):
        raise click.UsageError("give either --all or at least one --id")
    count = call(url, token, lambda gw: gw.redrive(code, None if redrive_all else list(ids)))
    if as_json:
        echo_json({"unit": code, "redriven": count})
    else:
        click.echo(f"redrove {count} copies of {code}")
    sys.exit(EXIT_OK if count else EXIT_REJECTED)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


@click.command()
@click.option("--unit", metavar="CODE", help="Only this unit (shown even with nothing waiting).")
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def backlog(unit: str | None, url: str | None, token: str | None, as_json: bool) -> None:
    """What waits to be delivered, per unit: copies waiting (in a pull inbox or on the bus),
    the oldest one's age, retrying, expired and dead copies, and for push units the last
    delivery and the last failure; largest backlog first, then the totals. Units with
    nothing waiting or failing are left out. Operator or auditor token.

    \b
      UNIT             WAITING  OLDEST  RETRYING  EXPIRED  DEAD  PUSH
      000.00.07.H07         12     14m        12        0     0  failing: ... answered 503
      total (1 units)       12     14m        12        0     0
    """
    view = call(url, token, lambda gw: gw.backlog(unit), as_json)
    if as_json:
        echo_json(view)
        return
    click.echo(
        f"{'UNIT':<16} {'WAITING':>7} {'OLDEST':>7} {'RETRYING':>9} {'EXPIRED':>8} {'DEAD':>5}"
        "  PUSH"
    )
    for row in view["units"]:
        push = ""
        if row.get("last_failure"):
            push = f"failing: {row['last_failure']['reason'] or '?'}"[:80]
        elif row.get("last_delivered_at"):
            push = f"ok {row['last_delivered_at'][:19]}"
        click.echo(
            f"{row['unit']:<16} {row['waiting']:>7} {_age(row['oldest_waiting_seconds']):>7} "
            f"{row['retrying']:>9} {row['expired']:>8} {row['dead']:>5}  {push}".rstrip()
        )
    t = view["totals"]
    label = f"total ({t['units']} units)"
    click.echo(
        f"{label:<16} {t['waiting']:>7} {_age(t['oldest_waiting_seconds']):>7} "
        f"{t['retrying']:>9} {t['expired']:>8} {t['dead']:>5}"
    )
