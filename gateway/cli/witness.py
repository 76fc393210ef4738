"""``gateway witness``: an independent witness of a gateway's ledger, run from an auditor's
machine or another province's gateway. It cosigns a checkpoint only after checking that the
log grew from the last one it cosigned, so that an operator who rewrites history is caught by
every receipt that requires the witness (see docs/evidence.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli.client import TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import EXIT_OK, EXIT_REJECTED, fail_environment
from gateway.cli.ledger import KEY_HELP, named, read_key
from gateway.client import GatewayClient
from gateway.errors import GatewayError
from gateway.evidence.witness import Cosigned, Refused, check_and_cosign
from gateway.ledger.checkpoint import NoteVerifier, parse_checkpoint, parse_note
from gateway.ledger.cosignature import Witness, WitnessKey
from gateway.service.keyfile import read_or_make

KEY_FILE = "witness.key"  # Ed25519, PKCS8 PEM, owner-only
VKEY_FILE = "witness.vkey"  # name+id+base64: what the gateway and auditors configure
LOG_KEY_FILE = "log.vkey"  # the log's key, pinned on first use
STATE_FILE = "checkpoint"  # the last checkpoint this witness cosigned


def load_witness(keys: Path, name: str) -> tuple[Witness, bool]:
    """The witness key in ``keys`` (made on first use under ``name``); and whether it is new."""
    new = not (keys / KEY_FILE).exists()

    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    private = serialization.load_pem_private_key(
        read_or_make(keys / KEY_FILE, make, "the witness key"), None
    )
    if not isinstance(private, Ed25519PrivateKey):
        fail_environment(f"{keys / KEY_FILE} is not an Ed25519 key")
    vkey_path = keys / VKEY_FILE
    if vkey_path.exists():
        name = WitnessKey.from_vkey(vkey_path.read_text(encoding="ascii")).name
    witness = Witness(name, private)
    vkey_path.write_text(witness.vkey + "\n", encoding="ascii")
    return witness, new


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _log_key(state: Path, key_spec: str | None, origin: str) -> NoteVerifier:
    pinned = state / LOG_KEY_FILE
    given = named(read_key(key_spec), origin) if key_spec else None
    if pinned.exists():
        key = NoteVerifier.from_vkey(pinned.read_text(encoding="ascii"))
        if given is not None and given.vkey != key.vkey:
            fail_environment(f"--key is not the log key pinned in {pinned} ({key.vkey})")
        return key
    if given is None:
        fail_environment(f"the first run needs the gateway's key (--key): {state} pins none yet")
    _write(pinned, given.vkey + "\n")
    return given


@click.group()
def witness() -> None:
    """Witness a gateway's ledger: cosign its checkpoints after checking it only grew."""


@witness.command("cosign")
@URL_OPTION
@TOKEN_OPTION
@click.option(
    "--state",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of this witness's memory of the log: the last checkpoint it cosigned and "
    "the log's key, pinned on first use.",
)
@click.option(
    "--keys",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder of the witness's own key ({KEY_FILE}, made on first use; its verifier key "
    f"is written to {VKEY_FILE}).",
)
@click.option("--key", "key_spec", help=KEY_HELP + " Needed on the first run, then pinned.")
@click.option(
    "--name",
    default="witness.local",
    show_default=True,
    help="The witness's key name when its key is made (no spaces or '+').",
)
def witness_cosign(
    url: str | None,
    token: str | None,
    state: Path,
    keys: Path,
    key_spec: str | None,
    name: str,
) -> None:
    """Fetch the gateway's latest checkpoint and the consistency proof from the last one this
    witness cosigned, check both, cosign and post the cosignature (an auditor or operator
    token). Refuses, exit 1, if the log forked or shrank: nothing is cosigned or posted."""
    state.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    try:
        me, new = load_witness(keys, name)
    except ValueError as e:
        fail_environment(f"the witness key cannot be made: {e}")
    if new:
        click.echo(f"new witness key {me.vkey} (written to {keys / VKEY_FILE})")
    last_path = state / STATE_FILE
    last = last_path.read_text(encoding="utf-8") if last_path.exists() else None

    async def fetch(gw: GatewayClient) -> tuple[str, list[bytes]]:
        note = await gw.checkpoint()
        size = parse_checkpoint(parse_note(note).text).size
        old = parse_checkpoint(parse_note(last).text).size if last else 0
        proof = await gw.consistency(old, size) if 0 < old < size else []
        return note, proof

    note, proof = call(url, token, fetch)
    try:
        log_key = _log_key(state, key_spec, parse_checkpoint(parse_note(note).text).origin)
        done: Cosigned = check_and_cosign(me, log_key, last, note, proof, int(time.time()))
    except (Refused, GatewayError) as e:
        message = e.message if isinstance(e, GatewayError) else str(e)
        click.echo(f"REFUSED: {message}. Nothing was cosigned; keep {last_path} as evidence.")
        sys.exit(EXIT_REJECTED)
    _write(last_path, note)
    answer = call(url, token, lambda gw: gw.post_cosignature(note, done.line))
    head = done.checkpoint
    click.echo(
        f"OK cosigned {head.origin} at size {head.size} as {me.name}; the gateway holds "
        f"{answer['cosignatures']} cosignature(s) of it"
    )
    sys.exit(EXIT_OK)
