"""``gateway audit``: the auditor's checks and queries: receipts verified offline,
checkpoints and the proof that the ledger only grew, and ledger entries in a table, JSON or
CSV; from the database, or over HTTP with an auditor token."""

from __future__ import annotations

import base64
import csv
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.cli.client import TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    echo_json,
    fail_environment,
    run_async,
    settings,
)
from gateway.cli.evidence import MIN_WITNESSES_OPTION, WITNESS_KEY_OPTION, read_witness_keys
from gateway.cli.ledger import (
    KEY_HELP,
    KEYS_OPTION,
    echo_to,
    named,
    open_cli_ledger,
    output_file,
    public_key_or_none,
    read_key,
)
from gateway.client import GatewayClient
from gateway.errors import GatewayError
from gateway.ledger.checkpoint import NoteVerifier, open_checkpoint, parse_checkpoint, parse_note
from gateway.ledger.entry import Entry, Event, EventType, format_time
from gateway.ledger.keys import keys_dir
from gateway.ledger.merkle import verify_consistency
from gateway.ledger.query import Query
from gateway.ledger.receipt import verify_receipt


@click.group()
def audit() -> None:
    """Auditor tools: offline receipt checks, consistency between checkpoints, queries."""


@audit.command("verify-receipt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--key", "key_spec", required=True, help=KEY_HELP)
@WITNESS_KEY_OPTION
@MIN_WITNESSES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_verify_receipt(
    file: str,
    key_spec: str,
    witness_keys: tuple[Path, ...],
    min_witnesses: int | None,
    as_json: bool,
) -> None:
    """Check a receipt with nothing but the file and the gateway's public key (no database):
    the checkpoint signature, each entry's canonical bytes and its inclusion proof, the signed
    acknowledgements it carries; with --witness-key, the witnesses' cosignatures of the
    checkpoint (all of them, or --min-witnesses N)."""
    key = read_key(key_spec)
    witnesses = read_witness_keys(witness_keys)
    required = len(witnesses) if min_witnesses is None else min_witnesses
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    try:
        verified = verify_receipt(json.loads(text), key, witnesses, required)
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
        for cosig in verified.cosignatures:
            when = datetime.fromtimestamp(cosig.timestamp, UTC)
            click.echo(f"  cosigned by witness {cosig.witness} at {when:%Y-%m-%dT%H:%M:%SZ}")
        for said in verified.acknowledgements:
            click.echo(
                f"  signed acknowledgement: {said.recipient} received {said.delivery_id} "
                f"at {said.time:%Y-%m-%dT%H:%M:%SZ}"
            )
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
    with output_file(output) as out:
        echo_to(note, out)


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
        raw: NoteVerifier | Ed25519PublicKey = read_key(key_spec)
    else:
        public = public_key_or_none(keys or keys_dir(cfg))
        if public is None:
            fail_environment("no key to check the checkpoints' signatures: give --key PUB")
        raw = public
    notes = [Path(p).read_text(encoding="utf-8") for p in (old, new)]
    try:
        verifier = named(raw, parse_checkpoint(parse_note(notes[0]).text).origin)
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
        async with open_cli_ledger(cfg, keys, signing=False) as led:
            return await led.consistency_proof(first.size, second.size)

    try:
        if url:
            proof = call(url, token, lambda gw: gw.consistency(first.size, second.size))
        else:
            proof = run_async(run())
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
    return Entry(row["seq"], datetime.fromisoformat(row["time"]), Event.from_json(row))


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
        async with open_cli_ledger(settings(), None, signing=False) as led:

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

    with output_file(output) as out:
        writer = _Writer(fmt, out)
        if url:
            next_after = call(url, token, lambda gw: from_gateway(gw, writer.write))
        else:
            next_after = run_async(from_database(writer.write))
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
            echo_to("[", out)

    def write(self, entries: list[Entry]) -> None:
        for entry in entries:
            if self.csv:
                self.csv.writerow(_row(entry))
            elif self.fmt == "json":
                sep = "," if self.count else ""
                echo_to(sep + "\n  " + json.dumps(entry.to_json(), ensure_ascii=False), self.out)
            else:
                echo_to(_entry_line(entry) + "\n", self.out)
            self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            echo_to("\n]\n" if self.count else "]\n", self.out)
        elif self.fmt == "table" and not self.count:
            click.echo("(no entries)", err=True)
