"""``gateway send``, ``inbox``, ``status`` and ``receipts``: the client side of the HTTP API, for
agency integrators and operators (gateway.client does the work)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.cli.common import EXIT_OK, EXIT_REJECTED, echo_json, exits, fail_environment
from gateway.cli.units import open_directory
from gateway.client import (
    BUSINESS_TYPES,
    MAX_INBOX_WAIT,
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    business_change,
    make_attachment,
    sign_acknowledgement,
    sign_as_unit,
    unit,
)
from gateway.envelope import STATUS_CODES, Package
from gateway.errors import GatewayError
from gateway.ledger.receipt import load_verifier, verify_receipt

T = TypeVar("T")

URL_OPTION = click.option(
    "--url",
    envvar="GATEWAY_URL",
    show_envvar=True,
    help="The gateway's base URL, e.g. http://127.0.0.1:8080 (required to talk to it).",
)
TOKEN_OPTION = click.option(
    "--token",
    envvar="GATEWAY_TOKEN",
    show_envvar=True,
    help="Bearer token from `gateway tokens issue` (required to talk to the gateway).",
)
KEYS_OPTION = click.option(
    "--keys",
    envvar="GATEWAY_KEYS",
    required=True,
    show_envvar=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Key folder holding units/<CODE>/key.pem and cert.pem (gateway keys init layout).",
)
FROM_OPTION = click.option(
    "--from", "sender", required=True, metavar="CODE", help="Your unit's OrganId."
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
DIRECTORY_OPTION = click.option(
    "--directory",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unit directory CSV for unit names (default: GATEWAY_DIRECTORY, else the sample).",
)


def call(
    url: str | None,
    token: str | None,
    work: Callable[[GatewayClient], Awaitable[T]],
    as_json: bool = False,
) -> T:
    """Run ``work`` with a client; the gateway's refusals exit 1, no answer exits 2."""
    if not url:
        raise click.UsageError("Missing option '--url' (or GATEWAY_URL).")
    if not token:
        raise click.UsageError("Missing option '--token' (or GATEWAY_TOKEN).")

    async def main() -> T:
        async with GatewayClient(url, token) as gw:
            return await work(gw)

    with exits():
        try:
            return asyncio.run(main())
        except ApiError as e:
            if as_json:  # the problem itself, for a program reading the output
                echo_json(e.problem or {"status": e.status, "code": e.code, "detail": e.detail})
            raise


def _sign(package: Package, keys: Path) -> bytes:
    with exits():  # a refusal here: the builder made something the envelope refuses
        return sign_as_unit(package, keys)


def _codes(values: tuple[str, ...]) -> list[str]:
    return [c.strip() for v in values for c in v.split(",") if c.strip()]


def _recipient_summary(answer: dict[str, Any]) -> str:
    parts = [f"{r.get('code')} {r.get('state')}" for r in answer.get("recipients", [])]
    return ", ".join(parts) or "none"


# -- gateway send ------------------------------------------------------------------------------


@click.command()
@URL_OPTION
@TOKEN_OPTION
@KEYS_OPTION
@FROM_OPTION
@click.option(
    "--to",
    "recipients",
    required=True,
    multiple=True,
    metavar="CODE[,CODE…]",
    help="Recipient OrganIds, comma-separated or repeated.",
)
@click.option("--subject", required=True, help="Trích yếu: what the letter is about.")
@click.option("--content", help="The letter's text (optional; the attachments usually hold it).")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to attach (repeat for several); its type is guessed from its name.",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 4),
    default=0,
    show_default=True,
    help="0 normal, 1 urgent, 2 very urgent, 3 flash, 4 flash-timed.",
)
@click.option("--number", help="Document number (số); default HHMMSSmmm of the current time.")
@click.option("--notation", default="CV", show_default=True, help="Notation (ký hiệu).")
@click.option(
    "--business",
    type=click.Choice(sorted(BUSINESS_TYPES)),
    help="Revoke, update or replace an earlier letter of yours (needs --target).",
)
@click.option("--target", help="The DocumentId (or document key) that --business changes.")
@click.option("--reason", help="Why (BussinessDocReason), with --business.")
@DIRECTORY_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the signed package to this file.",
)
@click.option("--dry-run", is_flag=True, help="Build and sign only; do not submit.")
@JSON_OPTION
def send(
    url: str | None,
    token: str | None,
    keys: Path,
    sender: str,
    recipients: tuple[str, ...],
    subject: str,
    content: str | None,
    attachments: tuple[Path, ...],
    priority: int,
    number: str | None,
    notation: str,
    business: str | None,
    target: str | None,
    reason: str | None,
    directory: Path | None,
    output: Path | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Build an official letter (công văn), sign it with your unit's key and submit it.

    The DocumentId is <FROM>,<today>,<number>/<notation> (Vietnam time). Unit names come from
    the directory (a unit it does not list is named by its code). Prints the document key on
    standard output and what happened to each recipient on standard error; --json prints the
    gateway's whole answer. The same letter sent twice is accepted once (the answer is
    repeated); exit 1 when the gateway refuses it, with ERROR <status> <code>: <detail>.

    \b
    gateway send --from 000.00.05.H07 --to 000.00.06.H07,000.01.20.H07 \\
        --subject "Về việc báo cáo" --attach cong-van.pdf
    gateway send --from 000.00.05.H07 --to 000.00.06.H07 --subject "Thu hồi" \\
        --business revoke --target '000.00.05.H07,2026/11/26,125/CV' --reason "Sai số liệu"
    """
    if (business is None) != (target is None):
        raise click.UsageError("--business and --target go together")
    if reason and not business:
        raise click.UsageError("--reason goes with --business")
    units = open_directory(directory)
    try:
        change = business_change(business, target, reason) if business and target else None
        files = [make_attachment(p.name, p.read_bytes(), i) for i, p in enumerate(attachments, 1)]
        package = build_letter(
            unit(sender, units),
            [unit(code, units) for code in _codes(recipients)],
            subject,
            content=content,
            attachments=files,
            priority=priority,
            number=number,
            notation=notation,
            business=change,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    data = _sign(package, keys)
    if output:
        output.write_bytes(data)
    if dry_run:
        click.echo(package.document_key)
        click.echo(f"signed, not submitted ({len(data)} bytes)", err=True)
        return
    submitted = call(url, token, lambda gw: gw.submit(data), as_json)
    if as_json:
        echo_json(submitted.answer)
    else:
        click.echo(submitted.document_key)
        again = " (already submitted: the original answer)" if submitted.replayed else ""
        click.echo(
            f"accepted{again}: ledger seq {submitted.answer.get('ledger_seq')}, "
            f"recipients {_recipient_summary(submitted.answer)}",
            err=True,
        )
    sys.exit(EXIT_OK)


# -- gateway inbox -----------------------------------------------------------------------------


@click.group()
def inbox() -> None:
    """Your unit's inbox (pull delivery): list, fetch and acknowledge copies."""


def _inbox_line(item: dict[str, Any]) -> str:
    kind = str(item.get("kind") or "-")
    if item.get("status"):
        kind += f" {item['status']}"
    subject = item.get("subject") or ""
    return (
        f"{item.get('delivery_id')}  {kind:<9} {item.get('document_key')}  "
        f"from={item.get('sender')}  signature={item.get('signature_state')}  "
        f"attempt={item.get('attempt')}  {subject}"
    ).rstrip()


@inbox.command("list")
@URL_OPTION
@TOKEN_OPTION
@click.option("--unit", "for_unit", metavar="CODE", help="Another unit's inbox (operators).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--after", metavar="CURSOR", help="Continue after this cursor (from 'next').")
@click.option("--all", "everything", is_flag=True, help="Follow 'next' to the end.")
@click.option(
    "--wait",
    type=click.IntRange(0, MAX_INBOX_WAIT),
    default=0,
    metavar="SECONDS",
    help=f"When nothing waits, wait up to SECONDS (at most {MAX_INBOX_WAIT}) for the first "
    "copy to arrive.",
)
@JSON_OPTION
def inbox_list(
    url: str | None,
    token: str | None,
    for_unit: str | None,
    limit: int,
    after: str | None,
    everything: bool,
    wait: int,
    as_json: bool,
) -> None:
    """The copies waiting for you, oldest first: one line per copy with its delivery id,
    kind (document, or status and its code), document key, sender, signature state, attempt
    and subject. Then `gateway inbox fetch ID` and `gateway inbox ack ID`."""

    async def work(gw: GatewayClient) -> tuple[list[dict[str, Any]], str | None]:
        items: list[dict[str, Any]] = []
        cursor = after
        while True:
            first = not items  # only the first page waits for a copy
            page = await gw.inbox(
                unit=for_unit, limit=limit, after=cursor, wait=wait if first and wait else None
            )
            items += page.get("items", [])
            cursor = page.get("next")
            if not everything or not cursor:
                return items, cursor

    items, cursor = call(url, token, work, as_json)
    if as_json:
        echo_json({"items": items, "next": cursor})
        return
    for item in items:
        click.echo(_inbox_line(item))
    click.echo(f"{len(items)} cop{'y' if len(items) == 1 else 'ies'}", err=True)
    if cursor:
        click.echo(f"more: --after {cursor}", err=True)


@inbox.command("fetch")
@URL_OPTION
@TOKEN_OPTION
@click.argument("delivery_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the package here (default: standard output).",
)
def inbox_fetch(url: str | None, token: str | None, delivery_id: str, output: Path | None) -> None:
    """Download one copy: the package bytes exactly as signed (check them yourself with
    `gateway verify`), and the signature state the gateway recorded."""
    fetched = call(url, token, lambda gw: gw.fetch(delivery_id))
    if output is None or str(output) == "-":
        sys.stdout.buffer.write(fetched.data)
        sys.stdout.buffer.flush()
        where = "standard output"
    else:
        output.write_bytes(fetched.data)
        where = str(output)
    click.echo(
        f"OK {fetched.delivery_id} {fetched.document_key} "
        f"signature={fetched.signature_state} {len(fetched.data)} bytes -> {where}",
        err=output is None or str(output) == "-",
    )


@inbox.command("ack")
@URL_OPTION
@TOKEN_OPTION
@click.argument("delivery_ids", metavar="DELIVERY_ID...", nargs=-1, required=True)
@click.option(
    "--fail",
    "reason",
    metavar="REASON",
    help="Report that you could not take the copies; they are offered again later.",
)
@click.option(
    "--keys",
    envvar="GATEWAY_KEYS",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Sign each acknowledgement with your unit's key from this folder (units/<CODE>/): "
    "the copy is fetched again and its SHA-256 stated. Needs --unit.",
)
@click.option("--unit", "unit_code", metavar="CODE", help="Your unit's OrganId (with --keys).")
def inbox_ack(
    url: str | None,
    token: str | None,
    delivery_ids: tuple[str, ...],
    reason: str | None,
    keys: Path | None,
    unit_code: str | None,
) -> None:
    """Acknowledge copies: received (they leave the inbox; ledger `delivered`), or --fail.

    Several copies go in one request (at most 500), each answered on its own: a line per
    copy, and the exit status is 1 if any was refused.

    With --keys and --unit each acknowledgement is a signed statement (delivery id, the
    package's SHA-256, your OrganId, the time) that the sender can hold against you; units
    whose policy requires one cannot acknowledge without it."""
    if keys is not None and (unit_code is None or reason is not None):
        raise click.UsageError("--keys signs a done acknowledgement: give --unit, not --fail")

    async def acknowledgement(gw: GatewayClient, delivery_id: str) -> dict[str, Any]:
        ack: dict[str, Any] = {"delivery_id": delivery_id, "result": "done"}
        if reason is not None:
            ack |= {"result": "fail", "reason": reason}
        if keys is not None and unit_code is not None:
            fetched = await gw.fetch(delivery_id)
            ack["acknowledgement"] = sign_acknowledgement(
                delivery_id, fetched.data, unit_code, keys
            )
        return ack

    async def acknowledge(gw: GatewayClient) -> list[dict[str, Any]]:
        acks = [await acknowledgement(gw, delivery_id) for delivery_id in delivery_ids]
        if len(acks) == 1:
            ack = acks[0]
            return [
                await gw.ack(
                    ack["delivery_id"], fail=reason, acknowledgement=ack.get("acknowledgement")
                )
            ]
        return await gw.ack_all(acks)

    refused = 0
    for answer in call(url, token, acknowledge):
        problem = answer.get("problem")
        if problem is None:
            click.echo(f"OK {answer['delivery_id']} state={answer.get('state')}")
        else:
            refused += 1
            click.echo(f"REFUSED {answer['delivery_id']} {problem['code']}: {problem['detail']}")
    if refused:
        sys.exit(EXIT_REJECTED)


# -- gateway status ----------------------------------------------------------------------------


@click.group()
def status() -> None:
    """Business status of documents: answer one (send) or look at one (show)."""


@status.command("send")
@URL_OPTION
@TOKEN_OPTION
@KEYS_OPTION
@FROM_OPTION
@click.option(
    "--document",
    "document_key",
    required=True,
    metavar="KEY",
    help="The document answered: '<sender>|<OrganId>,<yyyy/MM/dd>,<number>/<notation>'.",
)
@click.option(
    "--code",
    required=True,
    type=click.Choice(list(STATUS_CODES)),
    help="; ".join(f"{c} {m}" for c, m in STATUS_CODES.items()) + ".",
)
@click.option("--description", help="Free text for the sender (Description).")
@DIRECTORY_OPTION
@JSON_OPTION
def status_send(
    url: str | None,
    token: str | None,
    keys: Path,
    sender: str,
    document_key: str,
    code: str,
    description: str | None,
    directory: Path | None,
    as_json: bool,
) -> None:
    """Send a status packet about a document: as a recipient 01 arrived, 02 rejected,
    03 accepted, 04 assigned, 05 in progress, 06 done, 15/16 agree or refuse a recall; as its
    sender 13 to recall it. Signed with your unit's key; the gateway routes it back."""
    try:
        package = build_status(
            unit(sender, open_directory(directory)), document_key, code, description=description
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    data = _sign(package, keys)
    submitted = call(url, token, lambda gw: gw.submit(data), as_json)
    if as_json:
        echo_json(submitted.answer)
        return
    again = " (already submitted)" if submitted.replayed else ""
    click.echo(
        f"OK status {code} for {document_key}{again}: ledger seq "
        f"{submitted.answer.get('ledger_seq')}, to {_recipient_summary(submitted.answer)}"
    )


@status.command("show")
@URL_OPTION
@TOKEN_OPTION
@click.argument("document_key", metavar="KEY")
@JSON_OPTION
def status_show(url: str | None, token: str | None, document_key: str, as_json: bool) -> None:
    """Where a document is: each recipient's transport state and its status timeline."""
    doc = call(url, token, lambda gw: gw.document(document_key), as_json)
    if as_json:
        echo_json(doc)
        return
    click.echo(
        f"{doc.get('document_key')}  submitted {doc.get('submitted_at')}  "
        f"seq {doc.get('ledger_seq')}  {doc.get('subject') or ''}".rstrip()
    )
    for r in doc.get("recipients", []):
        timeline = " ".join(f"{s.get('code')}@{s.get('at')}" for s in r.get("statuses", []))
        recall = f"  recall={r['recall']}" if r.get("recall") else ""
        why = f"  ({r['reason']})" if r.get("reason") else ""
        click.echo(
            f"  {r.get('code')}  {r.get('transport')} {r.get('transport_at') or ''}{why}  "
            f"statuses: {timeline or '-'}{recall}"
        )


# -- gateway receipts --------------------------------------------------------------------------


def _check(receipt: dict[str, Any], pinned: Any) -> dict[str, Any]:
    """Verify a receipt against its own key (self-consistency) and against the pinned one.

    ``entries`` are the verified entries' JSON, or the receipt's unverified claims if both
    checks failed (shown beside the failure)."""
    result: dict[str, Any] = {"receipt_key": False, "pinned_key": None, "problem": None}
    verified = None
    try:
        own = load_verifier(str(receipt.get("verifier_key") or receipt.get("public_key") or ""))
        verified = verify_receipt(receipt, own)
        result["receipt_key"] = True
    except (GatewayError, ValueError) as e:
        result["problem"] = getattr(e, "message", str(e))
    if pinned is not None:
        try:
            verified = verify_receipt(receipt, pinned)
            result["pinned_key"] = True
        except GatewayError as e:
            result["pinned_key"] = False
            result["problem"] = result["problem"] or e.message
    if verified is not None:
        result["entries"] = [e.to_json() for e in verified.entries]
    else:
        claims = receipt.get("entries")
        result["entries"] = [c.get("event") or {} for c in (claims or []) if isinstance(c, dict)]
    return result


def _verdict(result: dict[str, Any]) -> str:
    own = "ok" if result["receipt_key"] else "FAILED"
    pinned = {None: "-", True: "ok", False: "FAILED"}[result["pinned_key"]]
    return f"receipt-key={own} pinned-key={pinned}"


@click.command()
@URL_OPTION
@TOKEN_OPTION
@click.argument("document_key", metavar="KEY")
@click.option(
    "--recipient", metavar="CODE", help="Only this recipient's (and document-wide) events."
)
@click.option(
    "--key",
    "key_spec",
    help="The gateway's public key you trust (PEM file, certificate, or verifier key "
    "'name+id+base64'); without it receipts are only checked against the key they carry.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save each receipt as DIR/receipt-<seq>.json (for gateway audit verify-receipt).",
)
@JSON_OPTION
def receipts(
    url: str | None,
    token: str | None,
    document_key: str,
    recipient: str | None,
    key_spec: str | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Fetch a document's ledger receipts and verify each one offline: its checkpoint
    signature and every entry's inclusion proof, against the key in the receipt and, with
    --key, against the gateway key you trust (only that proves the gateway signed it). One
    line per entry: seq, event, recipient, code, verdict. Exit 1 if any check fails or
    there is no receipt."""
    pinned = None
    if key_spec:
        path = Path(key_spec)
        try:
            pinned = load_verifier(path.read_text(encoding="utf-8") if path.is_file() else key_spec)
        except ValueError as e:
            fail_environment(f"--key {key_spec}: {e}")
    found = call(url, token, lambda gw: gw.receipts(document_key, recipient), as_json)
    results = [_check(r, pinned) for r in found]
    if output:
        output.mkdir(parents=True, exist_ok=True)
        for i, receipt in enumerate(found):
            seqs = [e.get("index") for e in receipt.get("entries", [])]
            name = f"receipt-{seqs[0] if seqs else i}.json"
            (output / name).write_text(json.dumps(receipt, ensure_ascii=False, indent=2) + "\n")
    ok = bool(found) and all(r["receipt_key"] and r["pinned_key"] is not False for r in results)
    if as_json:
        echo_json(
            {
                "document_key": document_key,
                "verified": ok,
                "receipts": [
                    {
                        "receipt_key": r["receipt_key"],
                        "pinned_key": r["pinned_key"],
                        "problem": r["problem"],
                        "entries": r["entries"],
                    }
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            if not r["entries"]:
                click.echo(f"-  -  -  -  {_verdict(r)}: {r['problem']}")
            for entry in r["entries"]:
                click.echo(
                    f"{entry.get('seq', '-')}  {entry.get('type', '-')}  "
                    f"{entry.get('recipient') or '-'}  {entry.get('code') or '-'}  {_verdict(r)}"
                )
            if r["entries"] and r["problem"]:
                click.echo(f"  problem: {r['problem']}")
        if not found:
            click.echo(f"no receipts for {document_key}", err=True)
        elif pinned is None:
            click.echo("note: no --key given; checked against the receipts' own key only", err=True)
    sys.exit(EXIT_OK if ok else EXIT_REJECTED)
