"""``gateway bus``: declare the bus topology for the unit directory, show per-unit counters,
list and redrive dead letters. RabbitMQ when GATEWAY_AMQP_URL is set, else the LocalBus."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.bus import AmqpBus, LocalBus, UnitCounters, open_bus
from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    echo_json,
    fail_environment,
    progress,
    record_action,
    run_async,
    settings,
)

T = TypeVar("T")

DIRECTORY_OPTION = click.option(
    "--directory",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unit directory CSV (default: GATEWAY_DIRECTORY, else the bundled sample province).",
)


SETUP_CHUNK = 50  # unit queues declared at a time (progress between chunks)


def _run(work: Callable[[AmqpBus | LocalBus], Awaitable[T]], *, create: bool = False) -> T:
    """Open the configured bus, run ``work`` on it, close it; bus problems exit 2. The local
    bus is made only by ``create`` (setup), not by a command that reads it."""
    config = settings()
    local = config.home / "bus.db"
    if config.amqp_url is None and not create and not local.exists():
        fail_environment(
            f"no local bus at {local} (GATEWAY_HOME={config.home}): run this where the gateway "
            "runs, or set GATEWAY_HOME or GATEWAY_AMQP_URL"
        )

    async def main() -> T:
        async with open_bus(config) as bus:
            return await work(bus)

    return run_async(main(), config)


def _where(bus: AmqpBus | LocalBus) -> str:
    if isinstance(bus, AmqpBus):
        hosts = ", ".join(h.where for h in bus.hosts)  # never print the credentials
        return f"RabbitMQ {hosts} (namespace {bus.topology.namespace})"
    assert isinstance(bus, LocalBus)
    return f"the local bus {bus.path}"


def _unit_codes(directory: Path | None) -> list[str]:
    from gateway.cli.units import open_directory

    return [u.code for u in open_directory(directory)]


@click.group()
def bus() -> None:
    """The message bus between unit endpoints (RabbitMQ, or the embedded LocalBus)."""


@bus.command()
@DIRECTORY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def setup(directory: Path | None, as_json: bool) -> None:
    """Declare the queue of every unit of the directory, and the shared exchanges, delay and
    dead-letter queues. Idempotent: run it again after the directory changed.

    \b
      declared 809 unit queues on RabbitMQ 127.0.0.1:5672 (namespace gw)
    """
    codes = _unit_codes(directory)

    async def work(b: AmqpBus | LocalBus) -> str:
        with progress(len(codes), "declaring unit queues") as advance:
            for start in range(0, len(codes), SETUP_CHUNK):
                chunk = codes[start : start + SETUP_CHUNK]
                await b.declare(chunk)
                advance(len(chunk))
        return _where(b)

    where = _run(work, create=True)
    if as_json:
        echo_json({"declared": len(codes), "bus": where})
    else:
        click.echo(f"declared {len(codes)} unit queues on {where}")


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


@bus.command()
@click.option(
    "--unit",
    "units",
    multiple=True,
    metavar="CODE",
    help="Only this unit (repeatable). Default: every unit of the directory.",
)
@DIRECTORY_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also list units with nothing queued.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object keyed by unit code.")
def status(units: tuple[str, ...], directory: Path | None, show_all: bool, as_json: bool) -> None:
    """Depth (ready), in-flight (handed out, not yet acknowledged), retrying and dead per unit.

    In-flight is '-' where the bus cannot know it: RabbitMQ does not tell unacknowledged
    counts over AMQP, so only the LocalBus reports it to another process.

    \b
      UNIT                    DEPTH  IN-FLIGHT  RETRYING   DEAD
      000.00.05.H07               3          -         1      0
      total (809 units)           3          -         1      0
    """
    codes = list(units) or _unit_codes(directory)
    counters: dict[str, UnitCounters] = _run(lambda b: b.counters(codes))
    missing = [c for c in codes if c not in counters]
    if as_json:
        echo_json({c: counters[c].as_dict() for c in codes if c in counters})
    else:
        click.echo(f"{'UNIT':<22} {'DEPTH':>7} {'IN-FLIGHT':>10} {'RETRYING':>9} {'DEAD':>6}")
        for code in codes:
            c = counters.get(code)
            if c is None or (
                not show_all and not units and not (c.depth or c.in_flight or c.retrying or c.dead)
            ):
                continue
            click.echo(
                f"{code:<22} {c.depth:>7} {_cell(c.in_flight):>10} {c.retrying:>9} {c.dead:>6}"
            )
        values = list(counters.values())
        flights = [c.in_flight for c in values if c.in_flight is not None]
        total = f"total ({len(values)} units)"
        click.echo(
            f"{total:<22} {sum(c.depth for c in values):>7} "
            f"{_cell(sum(flights) if flights else None):>10} "
            f"{sum(c.retrying for c in values):>9} {sum(c.dead for c in values):>6}"
        )
    for code in missing:
        click.echo(f"warning: no bus queue for unit {code} (run `gateway bus setup`)", err=True)
    sys.exit(EXIT_REJECTED if missing and units else EXIT_OK)


@bus.command()
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def dead(code: str, as_json: bool) -> None:
    """List the dead letters of unit CODE, oldest first: delivery id, document key, attempt,
    whether it expired, and why it died."""
    letters = _run(lambda b: b.dead_letters(code))
    if as_json:
        echo_json([_letter(d) for d in letters])
        return
    for d in letters:
        kind = "expired" if d.expired else "dead"
        click.echo(f"{d.delivery_id}  {d.document_key}  attempt={d.attempt}  {kind}  {d.reason}")
    click.echo(f"{len(letters)} dead letter(s) for {code}")


def _refuse_behind_a_gateway(instead: str) -> None:
    """Exit 2 while a gateway runs on the configured database (seen within 30 s)."""
    from gateway.db.engine import database_exists, open_engine
    from gateway.service.presence import running_gateways

    config = settings()
    if not database_exists(config):
        return

    async def look() -> list[Any]:
        engine = open_engine(config)
        try:
            return await running_gateways(engine)
        except Exception:  # no such table yet: no gateway of this version ran
            return []
        finally:
            await engine.dispose()

    running = asyncio.run(look())
    if running:
        where = ", ".join(f"{p.host} pid {p.pid}" for p in running[:3])
        fail_environment(
            f"a gateway is running on this database ({where}): changing its deliveries behind "
            f"its back would leave the ledger without a word of it; instead: {instead}"
        )


def _letter(d: Any) -> dict[str, Any]:
    return {
        "delivery_id": d.delivery_id,
        "document_key": d.document_key,
        "recipient": d.recipient,
        "attempt": d.attempt,
        "priority": d.priority,
        "expired": d.expired,
        "reason": d.reason,
        "dead_at": d.dead_at,
    }


@bus.command()
@click.argument("code")
@click.option("--all", "redrive_all", is_flag=True, help="Every dead letter of the unit.")
@click.option("--id", "ids", multiple=True, metavar="ID", help="A delivery id (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def redrive(code: str, redrive_all: bool, ids: tuple[str, ...], as_json: bool) -> None:
    """Put dead letters of unit CODE back on its queue, with attempt 1 and a fresh
    time-to-live, with no gateway running. Exit 1 when some --id was not among the unit's
    dead letters; exit 2 while a gateway runs on this database: then `gateway admin redrive`
    does it through the gateway, which also redrives copies expired in pull inboxes.

    \b
      redrove 2 dead letter(s) of 000.00.05.H07
    """
    if redrive_all == bool(ids):
        raise click.UsageError("give either --all or at least one --id")
    _refuse_behind_a_gateway("gateway admin redrive CODE --all --url URL --token OPERATOR")

    async def work(b: AmqpBus | LocalBus) -> tuple[int, list[str]]:
        unknown: list[str] = []
        if ids:
            present = {d.delivery_id for d in await b.dead_letters(code)}
            unknown = [i for i in ids if i not in present]
        count = await b.redrive(code, None if redrive_all else list(ids))
        return count, unknown

    count, unknown = _run(work)
    if count:
        from gateway.service.actions import Actor, operator_event

        record_action(operator_event("redrive", Actor.command_line(), unit=code, redriven=count))
    if as_json:
        echo_json({"unit": code, "redriven": count, "not_found": unknown})
    else:
        click.echo(f"redrove {count} dead letter(s) of {code}")
        for i in unknown:
            click.echo(f"not found: {i}", err=True)
    sys.exit(EXIT_REJECTED if unknown else EXIT_OK)
