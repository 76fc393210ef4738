"""``gateway audit bundle`` and ``verify-bundle``: a letter's evidence bundle, written from the
database or fetched over HTTP, and checked offline with nothing but the file and the keys."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.client import TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import EXIT_OK, EXIT_REJECTED, fail_environment, run_async, settings
from gateway.cli.ledger import KEY_HELP, KEYS_OPTION, open_cli_ledger, read_key
from gateway.evidence.bundle import BundleInvalid, verify_bundle
from gateway.ledger.cosignature import WitnessKey
from gateway.ledger.keys import keys_dir
from gateway.trust import KeysLayout, TrustStore

WITNESS_KEY_OPTION = click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A witness's verifier key file (witness.vkey); repeat for several witnesses.",
)
MIN_WITNESSES_OPTION = click.option(
    "--min-witnesses",
    type=click.IntRange(min=0),
    help="Cosignatures required from the witnesses given (default: all of them).",
)


def read_witness_keys(paths: tuple[Path, ...]) -> tuple[WitnessKey, ...]:
    try:
        return tuple(WitnessKey.from_vkey(p.read_text(encoding="ascii")) for p in paths)
    except (ValueError, UnicodeDecodeError) as e:
        fail_environment(f"--witness-key: {e}")


@click.command("bundle")
@click.argument("document_key")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bundle (a zip) here.",
)
@KEYS_OPTION
@URL_OPTION
@TOKEN_OPTION
def audit_bundle(
    document_key: str, output: Path, keys: Path | None, url: str | None, token: str | None
) -> None:
    """Write the evidence bundle of a letter (its document key): the package as signed, every
    ledger entry with its inclusion proof, the cosigned checkpoint, the signed
    acknowledgements, the status packets, the CAs and CRLs in force. From the database (with
    the gateway's key), or from the gateway with --url and a token of its sender, a recipient,
    an operator or an auditor. Check it with `gateway audit verify-bundle`."""
    if url:
        data = call(url, token, lambda gw: gw.bundle(document_key))
    else:
        cfg = settings()
        folder = keys or keys_dir(cfg)

        async def run() -> bytes:
            from gateway.bus import ClaimStore
            from gateway.service.evidence import bundle_for

            layout = KeysLayout(folder)
            crl = cfg.crl or layout.crl_pem
            trust = TrustStore.from_files(
                cfg.trust or layout.trust_pem, crl if crl.exists() else None
            )
            async with open_cli_ledger(cfg, keys, signing=True) as led:
                bodies = ClaimStore(cfg.home / "packages")
                return await bundle_for(led, trust, bodies, document_key, datetime.now(UTC))

        data = run_async(run(), cfg)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_bytes(data)
    partial.replace(output)
    click.echo(f"OK wrote {output} ({len(data)} bytes)")


@click.command("verify-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_spec", required=True, help=KEY_HELP)
@WITNESS_KEY_OPTION
@MIN_WITNESSES_OPTION
def audit_verify_bundle(
    file: Path, key_spec: str, witness_keys: tuple[Path, ...], min_witnesses: int | None
) -> None:
    """Check a letter's evidence bundle offline (no database, no gateway): the manifest and
    its signature, every member's SHA-256, the ledger entries and their inclusion proofs, the
    checkpoint (and its witnesses' cosignatures, with --witness-key), the package's and the
    status packets' signatures and the signed acknowledgements against the bundled CAs and
    CRLs. Prints one line per fact proven; exit 1 naming the member at fault."""
    key = read_key(key_spec)
    witnesses = read_witness_keys(witness_keys)
    required = len(witnesses) if min_witnesses is None else min_witnesses
    try:
        proven = verify_bundle(file.read_bytes(), key, witnesses, required)
    except BundleInvalid as e:
        click.echo(f"INVALID {file}: {e.member}: {e.message}")
        sys.exit(EXIT_REJECTED)
    click.echo(f"OK {file}: evidence of {proven.document_key}")
    for fact in proven.facts:
        click.echo(f"  {fact}")
    sys.exit(EXIT_OK)
