"""``gateway bench``: the end-to-end benchmark over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import click

from gateway.cli.common import EXIT_USAGE, fail_environment
from gateway.errors import ConfigError

FLAT_OUT_WARMUP = 500  # letters: about a second's worth flat out on two cores


@click.command()
@click.option(
    "--embedded",
    is_flag=True,
    help="SQLite and the local bus (the default without --amqp and --db).",
)
@click.option(
    "--amqp",
    "amqp_url",
    metavar="URL",
    help="RabbitMQ for the bus, e.g. amqp://guest:guest@127.0.0.1:5672/.",
)
@click.option(
    "--db",
    "database_url",
    metavar="URL",
    help="PostgreSQL, e.g. postgresql+asyncpg://postgres@127.0.0.1/test (the run gets a "
    "scratch schema, dropped after it).",
)
@click.option(
    "--url",
    metavar="URL",
    help="Measure the gateway already running at URL instead of starting one, configured as "
    "this shell's settings say (GATEWAY_HOME, GATEWAY_KEYS, GATEWAY_DATABASE_URL, "
    "GATEWAY_AMQP_URL, as for gateway serve): the letters are signed with its development "
    "PKI's unit keys, the run's tokens are issued in its database and revoked after, and the "
    "raw stages use its broker and database. Its ledger keeps the letters: a gateway for "
    "trials, not one in service. Its per-token rate limit applies (GATEWAY_API_RATE).",
)
@click.option(
    "--pid",
    type=click.IntRange(min=1),
    help="With --url: the gateway's main process on this machine, for its CPU and memory "
    "(and the soak's samples); without it they are not measured.",
)
@click.option(
    "--packages",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Letters to submit.",
)
@click.option(
    "--connections",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="HTTP connections submitting at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Offer this many letters per second (open loop) instead of flat out.",
)
@click.option(
    "--size",
    type=click.Choice(["8k", "64k", "1m"]),
    default="8k",
    show_default=True,
    help="Size of each signed letter.",
)
@click.option(
    "--units",
    default=16,
    show_default=True,
    type=click.IntRange(min=1, max=200),
    help="Sender units, and as many pull recipients.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    help="Gateway processes (gateway serve --workers).  [default: 1]",
)
@click.option(
    "--pull",
    type=click.Choice(["during", "after"]),
    default="during",
    show_default=True,
    help="When the recipients list, fetch and acknowledge: during the submissions (a steady "
    "exchange: accepted/s is what the gateway takes in while it also delivers), or after "
    "every letter has been answered (the intake alone, measured against the stage-sum limit "
    "of a submission's stages, then the drain of the inboxes).",
)
@click.option(
    "--fetch-each",
    is_flag=True,
    help="The recipients list their inbox, then fetch each copy on its own (GET "
    "/v1/inbox/ID), as a system made for one copy at a time does; by default they list it "
    "with the packages (include=package).",
)
@click.option(
    "--stage-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Time spent measuring each raw stage.",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    metavar="LETTERS",
    help="Letters sent first, the same way, and left out of the figures (their latency is "
    "reported apart): a gateway just started opens its database connections and fills its "
    "caches during its first second of load. Default: a second's worth at --rate, 500 flat "
    "out; 0 measures from the start.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="A soak: offer --rate letters a second for this long (instead of --packages), "
    "sampling the gateway's memory and open files; reports the memory's slope after "
    "warm-up and the latency's drift.",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report to this file as JSON.",
)
def bench(
    embedded: bool,
    amqp_url: str | None,
    database_url: str | None,
    url: str | None,
    pid: int | None,
    packages: int,
    connections: int,
    rate: float | None,
    size: str,
    units: int,
    workers: int | None,
    pull: str,
    fetch_each: bool,
    stage_seconds: float,
    warmup: int | None,
    duration: float | None,
    json_file: Path | None,
) -> None:
    """Measure the whole gateway over HTTP, beside its raw stages.

    Starts a gateway in its own process (embedded by default; --amqp and --db select RabbitMQ
    and PostgreSQL), signs PACKAGES letters from --units sender units to as many pull units,
    submits them over HTTP (flat out, or at --rate) after --warmup letters sent the same way
    but not measured, lets the recipients list their inboxes with the packages and
    acknowledge every copy, and reports accepted/s, full cycles/s, latency percentiles, CPU
    of the gateway, broker and database per package and the gateway's memory. In the same
    run it measures the raw stages on the same bytes (lxml + XSD, signxml, a confirmed
    publish, a committed row) and prints the stage-sum limit and the gateway's ratio to it;
    then one request to a bare aiohttp server, and the cycle floor: the full cycles a second
    the cores could carry if each cost only its requests and the package's stages. Last, the
    CPU limit: what the cores carry at the run's own CPU a letter (every process measured),
    the share of it accepted and the stages' share of the cost (their product is the ratio
    to the stage-sum limit).

    With --url it measures a gateway already running instead (a trial or staging gateway:
    the letters stay in its ledger), configured as this shell's settings say.
    """
    from gateway.bench.run import BenchOptions, format_report, run_bench

    for wrong, message in (
        (embedded and (amqp_url or database_url), "--embedded cannot go with --amqp or --db"),
        (
            url and (embedded or amqp_url or database_url or workers),
            "--url measures a gateway as it is configured: not with --embedded, --amqp, --db "
            "or --workers",
        ),
        (pid is not None and not url, "--pid names the process of the gateway at --url"),
        (
            duration is not None and rate is None,
            "--duration needs --rate (letters a second to offer)",
        ),
        (
            duration is not None and pull == "after",
            "--duration measures a steady exchange: not with --pull after",
        ),
        (
            duration is not None and url and pid is None,
            "--duration samples the gateway's memory: with --url, name its process with --pid",
        ),
    ):
        if wrong:
            click.echo(f"error: {message}", err=True)
            sys.exit(EXIT_USAGE)
    if duration is not None and rate is not None:
        packages = math.ceil(rate * duration)
    if warmup is None:
        warmup = math.ceil(rate) if rate is not None else FLAT_OUT_WARMUP
    options = BenchOptions(
        amqp_url=amqp_url,
        database_url=database_url,
        packages=packages,
        connections=connections,
        rate=rate,
        size=size,
        units=units,
        workers=workers or 1,
        url=url,
        pid=pid,
        pull=pull,
        fetch_each=fetch_each,
        stage_seconds=stage_seconds,
        warmup=warmup,
        timeout=600.0 if duration is None else duration + 600.0,
        sample_every=None if duration is None else max(1.0, min(10.0, duration / 60)),
    )
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(line: str) -> None:
        if tty:
            click.echo(f"\r{line}", nl=False, err=True)
        else:
            import time

            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                click.echo(line, err=True)

    try:
        report = asyncio.run(run_bench(options, lambda s: click.echo(s, err=True), progress))
    except ConfigError as e:  # the settings of the gateway at --url
        fail_environment(e.message)
    except (OSError, RuntimeError, ValueError) as e:
        fail_environment(str(e))
    if tty:
        click.echo(err=True)
    click.echo(format_report(report))
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
