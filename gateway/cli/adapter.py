"""``gateway adapter``: run a connector that lets an existing agency system join unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from gateway.cli.client import TOKEN_OPTION, URL_OPTION
from gateway.cli.common import exits, settings
from gateway.client import GatewayClient
from gateway.logs import configure_logging


@click.group()
def adapter() -> None:
    """Connectors for existing agency systems (installed adapters: `gateway adapter list`)."""


@adapter.command("list")
def list_adapters() -> None:
    """The installed adapters, one per line: name and where it is defined."""
    from adapters import registered

    for name, where in sorted(registered().items()):
        click.echo(f"{name}\t{where}")


@adapter.command()
@click.option("--unit", required=True, metavar="CODE", help="The unit whose system this is.")
@click.option(
    "--in",
    "inbox",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the system drops .edxml files into (letters and status packets).",
)
@click.option(
    "--out",
    "outbox",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the received letters are written to, as <delivery id>.edxml.",
)
@URL_OPTION
@TOKEN_OPTION
@click.option(
    "--keys",
    envvar="GATEWAY_KEYS",
    show_envvar=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Key folder holding the unit's key: unsigned files are signed with it.",
)
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
    help="Seconds between passes over the folder and the inbox; a letter arriving for the "
    "unit starts the next pass at once.",
)  # fmt: skip
@click.option("--once", is_flag=True, help="One pass, then exit (for cron or a test).")
def folder(
    unit: str,
    inbox: Path,
    outbox: Path,
    url: str | None,
    token: str | None,
    keys: Path | None,
    interval: float,
    once: bool,
) -> None:
    """Exchange letters through two folders.

    Every .edxml file dropped into IN is signed when unsigned and --keys is given, submitted,
    and moved to IN/sent/, or to IN/rejected/ with NAME.error.json (code, message, where)
    beside it. Every letter for the unit is written to OUT (under a temporary name, fsynced,
    then renamed) and acknowledged only after. A kill at any point loses nothing and sends
    nothing twice. One log line per file; stop with Ctrl-C or SIGTERM.
    """
    from adapters import Connector, adapter_class

    if not url or not token:
        raise click.UsageError("--url and --token (or GATEWAY_URL, GATEWAY_TOKEN) are required.")
    configure_logging(settings().log)
    with exits():
        connector_adapter = adapter_class("folder").from_settings(
            {"unit": unit, "in": inbox, "out": outbox, "keys": keys}
        )

        async def main() -> None:
            async with GatewayClient(url, token) as gw:
                connector = Connector(connector_adapter, gw)
                if once:
                    done = await connector.run_once()
                    click.echo(
                        f"sent {done.sent}, refused {done.refused}, delivered {done.delivered}, "
                        f"left for later {done.deferred}"
                    )
                    return
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                click.echo(f"watching {inbox} and the inbox of {unit}; writing to {outbox}")
                await connector.run(stop, interval)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
