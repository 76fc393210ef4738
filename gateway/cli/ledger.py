"""``gateway db`` and ``gateway ledger``: the database schema and the delivery ledger's
operator commands; and the helpers ``gateway audit`` shares with them (opening the ledger as
recorded, keys, output files)."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import make_url

from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    echo_json,
    fail_environment,
    progress,
    run_async,
    settings,
)
from gateway.config import Settings, setting_sources
from gateway.db.engine import database_url, open_engine
from gateway.db.migrate import (
    check_schema,
    current_revision,
    draft_revision,
    head_revision,
    upgrade,
)
from gateway.errors import ConfigError, GatewayError
from gateway.ledger.checkpoint import NoteVerifier
from gateway.ledger.entry import format_time
from gateway.ledger.identity import LedgerMismatch, read_identity
from gateway.ledger.keys import (
    HOW_TO_CREATE,
    keys_dir,
    load_certificate_chain,
    load_gateway_key,
    load_gateway_public_key,
)
from gateway.ledger.receipt import load_verifier
from gateway.ledger.store import SqlLedger, open_ledger

T = TypeVar("T")

KEYS_OPTION = click.option(
    "--keys",
    "keys",
    type=click.Path(file_okay=False, path_type=Path),
    help="PKI folder holding gateway/key.pem (default: GATEWAY_KEYS, else <var>/keys).",
)
KEY_HELP = (
    "The gateway's public key: a PEM file (public key or certificate), or a signed-note "
    "verifier key 'name+id+base64' given inline or in a file."
)


def _check_database_exists(cfg: Settings) -> None:
    url = make_url(database_url(cfg))
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        fail_environment(f"no ledger database at {path}; create it with `gateway db upgrade`")


@asynccontextmanager
async def open_cli_ledger(
    cfg: Settings, keys: Path | None, *, signing: bool
) -> AsyncIterator[SqlLedger]:
    """The configured ledger; with ``signing`` the private key is required, else optional."""
    _check_database_exists(cfg)
    folder = keys or keys_dir(cfg)
    key = chain = public = None
    try:
        loaded = load_gateway_key(folder)
        key, chain = loaded.private_key, loaded.certificate_chain
    except ConfigError:
        if signing:
            raise
        public = public_key_or_none(folder)
        chain = load_certificate_chain(folder) if public else None
    engine = open_engine(cfg)
    try:
        current = await current_revision(engine)
        if current != head_revision():
            raise ConfigError(
                f"the database is at revision {current or 'none'}, not {head_revision()}; "
                "run `gateway db upgrade`"
            )
        async with engine.connect() as conn:
            identity = await read_identity(conn)
        if identity is not None and identity.origin != cfg.ledger.origin:
            if setting_sources()["GATEWAY_LEDGER_ORIGIN"] != "default":
                raise LedgerMismatch(
                    f"the ledger in this database has the origin {identity.origin!r}; the "
                    f"configuration (GATEWAY_LEDGER_ORIGIN) names {cfg.ledger.origin!r}"
                )
            cfg = replace(cfg, ledger=replace(cfg.ledger, origin=identity.origin))
        ledger = open_ledger(
            cfg, key=key, public_key=public, certificate_chain=chain, engine=engine
        )
        if ledger.verifier is None and identity is not None and identity.verifier is not None:
            ledger.verifier = identity.verifier  # the key recorded with the ledger
        yield ledger
    finally:
        await engine.dispose()


def public_key_or_none(folder: Path) -> Ed25519PublicKey | None:
    try:
        return load_gateway_public_key(folder)
    except ConfigError:
        return None


def read_key(spec: str) -> NoteVerifier | Ed25519PublicKey:
    path = Path(spec)
    text = path.read_text(encoding="utf-8") if path.is_file() else spec
    try:
        return load_verifier(text)
    except ValueError as e:
        fail_environment(f"--key {spec}: {e}")


def named(key: NoteVerifier | Ed25519PublicKey, origin: str) -> NoteVerifier:
    return key if isinstance(key, NoteVerifier) else NoteVerifier(origin, key)


@contextmanager
def output_file(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or FILE written whole: a command that fails leaves no file behind
    (nor an earlier one half overwritten)."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as f:
            yield f
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def echo_to(text: str, out: IO[str]) -> None:
    click.echo(text, file=out, nl=False)


# -- gateway db --------------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The gateway database (GATEWAY_DATABASE_URL, else SQLite at <var>/ledger.db)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema to the newest (or a given) revision."""
    cfg = settings()

    async def run() -> str | None:
        engine = open_engine(cfg)
        try:
            await upgrade(engine, revision)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"OK database at revision {run_async(run())}")


@db.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def db_check(as_json: bool) -> None:
    """Check that the database is at the newest revision and that the models and the
    migrations agree (no drift). Exit 1 listing every difference."""
    cfg = settings()
    _check_database_exists(cfg)

    async def run() -> Any:
        engine = open_engine(cfg)
        try:
            return await check_schema(engine)
        finally:
            await engine.dispose()

    result = run_async(run())
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "current": result.current,
                "head": result.head,
                "differences": list(result.differences),
            }
        )
    elif result.ok:
        click.echo(f"OK database at revision {result.current} (head); models match the schema")
    else:
        if result.current != result.head:
            click.echo(
                f"DRIFT database at revision {result.current or 'none'}, "
                f"head is {result.head}: run `gateway db upgrade`"
            )
        for diff in result.differences:
            click.echo(f"DRIFT {diff}")
    sys.exit(EXIT_OK if result.ok else EXIT_REJECTED)


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the revision does.")
def db_revision(message: str) -> None:
    """Draft a new migration from the models (for developers adding tables): compares
    the models with the newest revision's schema and writes the difference to
    gateway/db/migrations/versions/. Review the file, then `gateway db upgrade`."""

    async def run() -> list[str]:
        return await draft_revision(message)

    for path in run_async(run()):
        click.echo(f"wrote {path}")


# -- gateway ledger ----------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """The delivery ledger: verification, receipts and signed checkpoints."""


@ledger.command("verify")
@click.option("--key", "key_spec", help=KEY_HELP + " Default: the gateway's own (--keys).")
@KEYS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ledger_verify(key_spec: str | None, keys: Path | None, as_json: bool) -> None:
    """Recompute the whole Merkle tree from the stored entries and check every stored
    checkpoint. Exit 1 naming the first bad sequence number when a row was altered, removed,
    inserted or reordered."""
    cfg = settings()

    async def run() -> tuple[Any, NoteVerifier | None]:
        async with open_cli_ledger(cfg, keys, signing=False) as led:
            verifier = named(read_key(key_spec), led.origin) if key_spec else led.verifier
            with progress(await led.size(), "verifying entries") as advance:
                return await led.verify(verifier, progress=advance), verifier

    report, verifier = run_async(run())
    signatures = (
        f"signatures checked with {verifier.name}+{verifier.key_id:08x}"
        if verifier
        else ("signatures NOT checked: no key (give --key or --keys)")
    )
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "signatures_checked": verifier is not None,
                "bad_seq": report.finding.seq if report.finding else None,
                "problem": report.finding.message if report.finding else None,
            }
        )
    elif report.ok:
        click.echo(
            f"OK ledger verified: {report.entries} entries, {report.checkpoints} "
            f"checkpoints ({signatures}), root {base64.b64encode(report.root).decode()}"
        )
    else:
        click.echo(f"CORRUPT {report.finding}")
        click.echo(
            f"  checked {report.entries} entries and {report.checkpoints} checkpoints "
            "before the problem",
            err=True,
        )
    sys.exit(EXIT_OK if report.ok else EXIT_REJECTED)


@ledger.command("checkpoint")
@click.option("--latest", is_flag=True, help="Print the newest stored checkpoint; sign nothing.")
@click.option("--size", type=int, help="Print the stored checkpoint of this tree size.")
@click.option("--list", "as_list", is_flag=True, help="List every stored checkpoint.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@KEYS_OPTION
def ledger_checkpoint(
    latest: bool, size: int | None, as_list: bool, output: str | None, keys: Path | None
) -> None:
    """Sign a checkpoint of the ledger now and print it (a C2SP signed note). Old checkpoints
    are kept; --latest, --size and --list read them without signing."""
    cfg = settings()
    signing = not (latest or as_list or size is not None)

    async def run() -> Any:
        async with open_cli_ledger(cfg, keys, signing=signing) as led:
            if as_list:
                return await led.checkpoints(limit=1_000_000)
            if latest:
                return await led.latest_checkpoint()
            if size is not None:
                return await led.checkpoint_of_size(size)
            return await led.checkpoint()

    result = run_async(run())
    with output_file(output) as out:
        if as_list:
            for cp in result:
                echo_to(
                    f"{cp.id}\t{cp.tree_size}\t{format_time(cp.created_at)}\t"
                    f"{base64.b64encode(cp.root_hash).decode()}\n",
                    out,
                )
        elif result is None:
            fail_environment("no such checkpoint")
        else:
            echo_to(result.note, out)


@ledger.command("receipt")
@click.option("--seq", type=int, help="The entry's sequence number.")
@click.option("--document", help="Every entry of this document key (sender|DocumentId).")
@click.option(
    "--recipient", help="With --document: that recipient's entries (and the document-wide ones)."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@KEYS_OPTION
def ledger_receipt(
    seq: int | None,
    document: str | None,
    recipient: str | None,
    output: str | None,
    keys: Path | None,
) -> None:
    """Write a JSON receipt that proves entries are in the ledger, verifiable offline with
    `gateway audit verify-receipt` and the gateway's public key. If no signed checkpoint
    covers the entries yet, one is signed now (this needs the key)."""
    if (seq is None) == (document is None):
        raise click.UsageError("give exactly one of --seq or --document")
    if recipient and not document:
        raise click.UsageError("--recipient goes with --document")
    cfg = settings()

    async def run() -> Any:
        async with open_cli_ledger(cfg, keys, signing=False) as led:
            if led.verifier is None:
                raise ConfigError(
                    f"the gateway key is missing under {keys or keys_dir(cfg)}; {HOW_TO_CREATE}"
                )
            if seq is not None:
                return await led.receipt(seq)
            assert document is not None
            from gateway.service.evidence import receipt_with_acks

            return await receipt_with_acks(led, document, recipient)  # with signed acks

    try:
        receipt = run_async(run())
    except GatewayError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(EXIT_REJECTED)
    with output_file(output) as out:
        echo_to(receipt.dumps(), out)
    if output:
        n = len(receipt.entries)
        click.echo(
            f"OK receipt for {n} entr{'y' if n == 1 else 'ies'} written to {output}", err=True
        )
