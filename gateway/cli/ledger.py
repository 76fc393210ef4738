"""``gateway db``, ``gateway ledger`` and ``gateway audit``: the database schema, the delivery
ledger's operator commands and the auditor's offline checks and queries."""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.cli.client import TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    echo_json,
    fail_environment,
    progress,
    settings,
)
from gateway.client import GatewayClient
from gateway.config import Settings, setting_sources
from gateway.db.engine import UNAVAILABLE, database_url, open_engine, unavailable
from gateway.db.migrate import (
    check_schema,
    current_revision,
    draft_revision,
    head_revision,
    upgrade,
)
from gateway.errors import ConfigError, GatewayError
from gateway.ledger.checkpoint import NoteVerifier, open_checkpoint, parse_checkpoint, parse_note
from gateway.ledger.entry import Entry, Event, EventType, format_time
from gateway.ledger.identity import LedgerMismatch, read_identity
from gateway.ledger.keys import (
    HOW_TO_CREATE,
    keys_dir,
    load_certificate_chain,
    load_gateway_key,
    load_gateway_public_key,
)
from gateway.ledger.merkle import verify_consistency
from gateway.ledger.query import Query
from gateway.ledger.receipt import load_verifier, verify_receipt
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


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ConfigError as e:
        fail_environment(e.message)
    except UNAVAILABLE as e:
        fail_environment(unavailable(settings(), e).message)
    except SQLAlchemyError as e:
        fail_environment(f"database error: {e.__class__.__name__}: {str(e).splitlines()[0]}")


def _check_database_exists(cfg: Settings) -> None:
    url = make_url(database_url(cfg))
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        fail_environment(f"no ledger database at {path}; create it with `gateway db upgrade`")


@asynccontextmanager
async def _ledger(cfg: Settings, keys: Path | None, *, signing: bool) -> AsyncIterator[SqlLedger]:
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
        public = _public_key_or_none(folder)
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


def _public_key_or_none(folder: Path) -> Ed25519PublicKey | None:
    try:
        return load_gateway_public_key(folder)
    except ConfigError:
        return None


def _read_key(spec: str) -> NoteVerifier | Ed25519PublicKey:
    path = Path(spec)
    text = path.read_text(encoding="utf-8") if path.is_file() else spec
    try:
        return load_verifier(text)
    except ValueError as e:
        fail_environment(f"--key {spec}: {e}")


def _named(key: NoteVerifier | Ed25519PublicKey, origin: str) -> NoteVerifier:
    return key if isinstance(key, NoteVerifier) else NoteVerifier(origin, key)


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
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


def _echo(text: str, out: IO[str]) -> None:
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

    click.echo(f"OK database at revision {_run(run())}")


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

    result = _run(run())
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

    for path in _run(run()):
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
        async with _ledger(cfg, keys, signing=False) as led:
            verifier = _named(_read_key(key_spec), led.origin) if key_spec else led.verifier
            with progress(await led.size(), "verifying entries") as advance:
                return await led.verify(verifier, progress=advance), verifier

    report, verifier = _run(run())
    signatures = (
        f"signatures checked with {verifier.vkey.rsplit('+', 1)[0]}"
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
        async with _ledger(cfg, keys, signing=signing) as led:
            if as_list:
                return await led.checkpoints(limit=1_000_000)
            if latest:
                return await led.latest_checkpoint()
            if size is not None:
                return await led.checkpoint_of_size(size)
            return await led.checkpoint()

    result = _run(run())
    with _output(output) as out:
        if as_list:
            for cp in result:
                _echo(
                    f"{cp.id}\t{cp.tree_size}\t{format_time(cp.created_at)}\t"
                    f"{base64.b64encode(cp.root_hash).decode()}\n",
                    out,
                )
        elif result is None:
            fail_environment("no such checkpoint")
        else:
            _echo(result.note, out)


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
        async with _ledger(cfg, keys, signing=False) as led:
            if led.verifier is None:
                raise ConfigError(
                    f"the gateway key is missing under {keys or keys_dir(cfg)}; {HOW_TO_CREATE}"
                )
            if seq is not None:
                return await led.receipt(seq)
            assert document is not None
            return await led.receipt_for_document(document, recipient)

    try:
        receipt = _run(run())
    except GatewayError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(EXIT_REJECTED)
    with _output(output) as out:
        _echo(receipt.dumps(), out)
    if output:
        n = len(receipt.entries)
        click.echo(
            f"OK receipt for {n} entr{'y' if n == 1 else 'ies'} written to {output}", err=True
        )


# -- gateway audit -----------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Auditor tools: offline receipt checks, consistency between checkpoints, queries."""


@audit.command("verify-receipt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--key", "key_spec", required=True, help=KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_verify_receipt(file: str, key_spec: str, as_json: bool) -> None:
    """Check a receipt with nothing but the file and the gateway's public key (no database):
    the checkpoint signature, each entry's canonical bytes and its inclusion proof."""
    key = _read_key(key_spec)
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    try:
        verified = verify_receipt(json.loads(text), key)
    except (GatewayError, json.JSONDecodeError) as e:
        message = e.message if isinstance(e, GatewayError) else f"not JSON: {e}"
        if as_json:
            echo_json({"valid": False, "code": "proof_invalid", "message": message})
        else:
            click.echo(f"INVALID {file}: {message}")
        sys.exit(EXIT_REJECTED)
    head = verified.checkpoint
    if as_json:
        echo_json(
            {
                "valid": True,
                "origin": head.origin,
                "tree_size": head.size,
                "entries": [e.to_json() for e in verified.entries],
                "notes": list(verified.notes),
            }
        )
    else:
        click.echo(
            f"OK {file}: {len(verified.entries)} entr"
            f"{'y' if len(verified.entries) == 1 else 'ies'} included in {head.origin} "
            f"at size {head.size} (root {base64.b64encode(head.root).decode()})"
        )
        for entry in verified.entries:
            click.echo("  " + _entry_line(entry))
        for note in verified.notes:
            click.echo(f"  note: {note}")
    sys.exit(EXIT_OK)


@audit.command("checkpoint")
@click.option(
    "--fresh",
    is_flag=True,
    help="One of the ledger as it is now (signed on request; at most one every 10 s).",
)
@URL_OPTION
@TOKEN_OPTION
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
def audit_checkpoint(fresh: bool, url: str | None, token: str | None, output: str | None) -> None:
    """Fetch the gateway's latest signed checkpoint over HTTP (an auditor or operator token),
    or with --fresh one covering every entry so far. Keep them: `gateway audit consistency
    OLD NEW` later proves that the ledger only grew in between."""
    note = call(url, token, lambda gw: gw.checkpoint(fresh=fresh))
    with _output(output) as out:
        _echo(note, out)


@audit.command("consistency")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_spec", help=KEY_HELP + " Default: the gateway's own (--keys).")
@KEYS_OPTION
@URL_OPTION
@TOKEN_OPTION
def audit_consistency(
    old: str,
    new: str,
    key_spec: str | None,
    keys: Path | None,
    url: str | None,
    token: str | None,
) -> None:
    """Check that the ledger only grew between two signed checkpoints (files, the older
    first): verify both signatures, fetch the consistency proof (from the database, or from
    the gateway with --url and an auditor --token) and check it."""
    cfg = settings()
    if key_spec:
        raw: NoteVerifier | Ed25519PublicKey = _read_key(key_spec)
    else:
        public = _public_key_or_none(keys or keys_dir(cfg))
        if public is None:
            fail_environment("no key to check the checkpoints' signatures: give --key PUB")
        raw = public
    notes = [Path(p).read_text(encoding="utf-8") for p in (old, new)]
    try:
        verifier = _named(raw, parse_checkpoint(parse_note(notes[0]).text).origin)
        heads = [open_checkpoint(n, verifier) for n in notes]
    except GatewayError as e:
        click.echo(f"INVALID checkpoint: {e.message}")
        sys.exit(EXIT_REJECTED)
    first, second = heads
    if first.origin != second.origin:
        click.echo(f"INVALID the checkpoints are of two logs: {first.origin}, {second.origin}")
        sys.exit(EXIT_REJECTED)
    if first.size > second.size:
        fail_environment(
            f"{old} (size {first.size}) is newer than {new} (size {second.size}): give the "
            "older checkpoint first"
        )

    async def run() -> list[bytes]:
        async with _ledger(cfg, keys, signing=False) as led:
            return await led.consistency_proof(first.size, second.size)

    try:
        if url:
            proof = call(url, token, lambda gw: gw.consistency(first.size, second.size))
        else:
            proof = _run(run())
        verify_consistency(first.size, second.size, first.root, second.root, proof)
    except GatewayError as e:
        click.echo(f"INCONSISTENT size {first.size} -> {second.size}: {e.message}")
        sys.exit(EXIT_REJECTED)
    click.echo(
        f"OK consistent: {first.origin} grew from {first.size} to {second.size} entries "
        f"(proof of {len(proof)} hashes)"
    )
    sys.exit(EXIT_OK)


def _api_filters(query: Query, limit: int, after: int | None) -> dict[str, str]:
    """A query as the parameters of GET /v1/ledger/entries."""
    values = {
        "document": query.document,
        "unit": query.unit,
        "event": ",".join(e.value for e in query.events) or None,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "limit": str(limit),
        "after": None if after is None else str(after),
    }
    return {k: v for k, v in values.items() if v is not None}


def _entry_of(row: dict[str, Any]) -> Entry:
    """An entry as /v1/ledger/entries gives it."""
    event = Event(
        EventType(row["type"]),
        document=row["document"],
        sender=row["sender"],
        recipient=row["recipient"],
        package_sha256=row["package_sha256"],
        code=row["code"],
        details=row.get("details") or {},
    )
    return Entry(row["seq"], datetime.fromisoformat(row["time"]), event)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from e
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


COLUMNS = (
    "seq",
    "time",
    "type",
    "document",
    "sender",
    "recipient",
    "code",
    "package_sha256",
    "details",
)


def _row(entry: Entry) -> dict[str, Any]:
    ev = entry.event
    return {
        "seq": entry.seq,
        "time": format_time(entry.time),
        "type": ev.type.value,
        "document": ev.document,
        "sender": ev.sender,
        "recipient": ev.recipient,
        "code": ev.code,
        "package_sha256": ev.package_sha256,
        "details": json.dumps(dict(ev.details), ensure_ascii=False, sort_keys=True),
    }


def _entry_line(entry: Entry) -> str:
    r = _row(entry)
    line = (
        f"{r['seq']:>8}  {r['time']}  {r['type']:<13}  {r['document'] or '-'}  "
        f"{r['sender'] or '-'} -> {r['recipient'] or '-'}  {r['code'] or ''}"
    )
    details = entry.event.details
    if entry.event.type is EventType.OPERATOR:  # who did it, and to what
        line += f"  by {details.get('actor')} ({details.get('role')})"
        if details.get("unit"):
            line += f"  unit {details['unit']}"
    return line.rstrip()


@audit.command("query")
@click.option("--document", help="Document key (sender|DocumentId).")
@click.option("--unit", help="A unit code: entries where it is the sender or the recipient.")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice([e.value for e in EventType]),
    help="Event type (repeatable).",
)
@click.option("--since", help="From this time (ISO 8601, inclusive; UTC if no zone).")
@click.option("--until", help="Before this time (ISO 8601, exclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Entries per page.",
)
@click.option("--after", type=int, help="Start after this sequence number (the next page).")
@click.option("--all", "every_page", is_flag=True, help="Fetch every page, not just one.")
@URL_OPTION
@TOKEN_OPTION
def audit_query(
    document: str | None,
    unit: str | None,
    events: tuple[str, ...],
    since: str | None,
    until: str | None,
    fmt: str,
    output: str | None,
    limit: int,
    after: int | None,
    every_page: bool,
    url: str | None,
    token: str | None,
) -> None:
    """List ledger entries matching every filter, in sequence order, one page at a time
    (--limit, then --after with the number printed at the end), or --all pages. From the
    database, or from the gateway with --url and an auditor --token (--limit up to 1000)."""
    query = Query(
        document=document,
        unit=unit,
        events=tuple(EventType(e) for e in events),
        since=_parse_time(since),
        until=_parse_time(until),
    )
    if url and limit > 1000:
        raise click.UsageError("with --url, --limit is at most 1000")

    async def pages(
        read: Callable[[int | None], Awaitable[tuple[list[Entry], int | None]]],
        write: Callable[[list[Entry]], None],
    ) -> int | None:
        cursor = after
        while True:
            entries, cursor = await read(cursor)
            write(entries)
            if cursor is None or not every_page:
                return cursor

    async def from_database(write: Callable[[list[Entry]], None]) -> int | None:
        async with _ledger(settings(), None, signing=False) as led:

            async def read(cursor: int | None) -> tuple[list[Entry], int | None]:
                page = await led.query(query, after=cursor, limit=limit)
                return page.entries, page.next_after

            return await pages(read, write)

    async def from_gateway(gw: GatewayClient, write: Callable[[list[Entry]], None]) -> int | None:
        async def read(cursor: int | None) -> tuple[list[Entry], int | None]:
            filters = _api_filters(query, limit, cursor)
            page = await gw.entries(**filters)
            nxt = page["next"]
            return [_entry_of(row) for row in page["entries"]], int(nxt) if nxt else None

        return await pages(read, write)

    with _output(output) as out:
        writer = _Writer(fmt, out)
        if url:
            next_after = call(url, token, lambda gw: from_gateway(gw, writer.write))
        else:
            next_after = _run(from_database(writer.write))
        writer.close()
    if next_after is not None:
        click.echo(f"more entries: repeat with --after {next_after}", err=True)


class _Writer:
    """Streams pages as a table, one JSON array, or CSV with one header."""

    def __init__(self, fmt: str, out: IO[str]) -> None:
        self.fmt, self.out, self.count = fmt, out, 0
        self.csv = csv.DictWriter(out, COLUMNS, lineterminator="\n") if fmt == "csv" else None
        if self.csv:
            self.csv.writeheader()
        elif fmt == "json":
            _echo("[", out)

    def write(self, entries: list[Entry]) -> None:
        for entry in entries:
            if self.csv:
                self.csv.writerow(_row(entry))
            elif self.fmt == "json":
                sep = "," if self.count else ""
                _echo(sep + "\n  " + json.dumps(entry.to_json(), ensure_ascii=False), self.out)
            else:
                _echo(_entry_line(entry) + "\n", self.out)
            self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            _echo("\n]\n" if self.count else "]\n", self.out)
        elif self.fmt == "table" and not self.count:
            click.echo("(no entries)", err=True)
