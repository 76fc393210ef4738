"""Helpers shared by the subcommands: settings, input files, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from gateway.config import Settings, load_settings, setting_sources, unknown_variables
from gateway.errors import ConfigError, GatewayError, Origin

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.ledger import Event

T = TypeVar("T")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def fail_environment(message: str) -> NoReturn:
    """Stop with exit code 2: the command cannot run in this environment."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def refuse(code: str, message: str) -> NoReturn:
    """Stop with exit code 1: the input was refused, with its catalogue code."""
    click.echo(f"INVALID {code}: {message}", err=True)
    sys.exit(EXIT_REJECTED)


@contextlib.contextmanager
def exits(config: Settings | None = None) -> Iterator[None]:
    """The one place where errors become exit codes: refused input (a gateway error of the
    client's making, a refusal from the gateway's API) exits 1 with its code; an unusable
    environment (configuration, a database or broker that does not answer, an unreachable
    gateway) exits 2 with the reason."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.client import ApiError, GatewayUnreachable
    from gateway.db.engine import UNAVAILABLE, unavailable

    try:
        yield
    except ApiError as e:
        click.echo(f"ERROR {e.status} {e.code}: {e.detail}", err=True)
        sys.exit(EXIT_REJECTED)
    except GatewayUnreachable as e:
        fail_environment(str(e))
    except GatewayError as e:
        if isinstance(e, ConfigError) or e.error.origin is Origin.SERVER:
            fail_environment(e.message)
        refuse(e.code, e.message)
    except UNAVAILABLE as e:
        fail_environment(unavailable(config or settings(), e).message)
    except SQLAlchemyError as e:
        fail_environment(f"database error: {type(e).__name__}: {str(e).splitlines()[0]}")


def run_async(work: Awaitable[T], config: Settings | None = None) -> T:
    """Run a command's async work under :func:`exits`."""
    with exits(config):
        return asyncio.run(work)  # type: ignore[arg-type]


_WARNED: set[str] = set()


def settings() -> Settings:
    """The settings; exit 2 on a bad value. A ``GATEWAY_*`` variable that names no setting
    is reported (once), with the settings it may have meant."""
    try:
        config = load_settings()
        for name in unknown_variables():
            if name not in _WARNED:
                _WARNED.add(name)
                close = difflib.get_close_matches(name, setting_sources(), n=2)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                click.echo(f"warning: {name} is not a gateway setting (ignored){hint}", err=True)
        return config
    except ConfigError as e:
        fail_environment(e.message)


def record_action(event: Event) -> None:
    """Ledger an operator action taken from the command line, in the configured gateway's
    database; where there is none (keys managed on another machine), say that it is not."""
    from gateway.db.engine import UNAVAILABLE, database_exists, unavailable
    from gateway.ledger import open_ledger

    config = settings()
    if not database_exists(config):
        click.echo(
            f"note: no gateway database here ({config.home / 'ledger.db'}, "
            "GATEWAY_DATABASE_URL): this action is not ledgered",
            err=True,
        )
        return

    async def append() -> None:
        ledger = open_ledger(config)
        try:
            await ledger.append([event])
        finally:
            await ledger.engine.dispose()

    try:
        asyncio.run(append())
    except Exception as e:
        if isinstance(e, UNAVAILABLE):
            e = unavailable(config, e)
        fail_environment(f"done, but the ledger could not record it: {e}")


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Report long work: a bar on a terminal, else a plain line at every tenth and at the
    end. Yields ``advance(n)``; everything goes to standard error."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    done = 0
    shown = -1

    def advance(n: int) -> None:
        nonlocal done, shown
        done += n
        tenth = done * 10 // max(total, 1)
        if tenth != shown:
            shown = tenth
            click.echo(f"{label}: {done}/{total}", err=True)

    yield advance


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


def with_database(work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    """Run ``work`` on the configured gateway's database (migrated first); exit 2 when there
    is none here."""
    from gateway.db.engine import database_exists, open_engine
    from gateway.db.migrate import upgrade

    config = settings()
    if not database_exists(config):
        fail_environment(
            f"no gateway database at {config.home / 'ledger.db'} (GATEWAY_HOME): run this "
            "where the gateway runs, or set GATEWAY_HOME or GATEWAY_DATABASE_URL"
        )

    async def main() -> None:
        engine = open_engine(config)
        try:
            await upgrade(engine)
            await work(engine)
        finally:
            await engine.dispose()

    run_async(main(), config)
