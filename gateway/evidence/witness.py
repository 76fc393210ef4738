"""A witness's side of cosigned checkpoints (C2SP tlog-witness model): it keeps the last
checkpoint it cosigned, and cosigns a new one only when the gateway's signature holds and a
consistency proof shows the log grew from the last one. Pure: notes, proofs and keys in; the
cosignature or a refusal out (the CLI fetches and posts; see gateway.cli.witness)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint, parse_note
from gateway.ledger.cosignature import Witness
from gateway.ledger.merkle import verify_consistency


class Refused(Exception):
    """The witness will not cosign: the log forked, shrank, or its signature fails."""


@dataclass(frozen=True)
class Cosigned:
    checkpoint: Checkpoint
    note: str  # the gateway's note exactly as fetched (the witness's new state)
    line: str  # the witness's cosignature line


def check_and_cosign(
    witness: Witness,
    log_key: NoteVerifier,
    last_note: str | None,
    new_note: str,
    proof: Sequence[bytes],
    timestamp: int,
) -> Cosigned:
    """Cosign ``new_note`` if it is signed by ``log_key`` and, when the witness cosigned
    ``last_note`` before, ``proof`` shows the log of ``new_note`` extends it."""
    try:
        new = open_checkpoint(new_note, log_key, log_key.name)
    except GatewayError as e:
        raise Refused(f"the checkpoint is not signed by the log's key: {e.message}") from e
    if last_note is not None:
        old = open_checkpoint(last_note, log_key, log_key.name)
        if new.size < old.size:
            raise Refused(f"the log SHRANK: it showed {old.size} entries before and {new.size} now")
        try:
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except GatewayError as e:
            raise Refused(
                f"the log FORKED: size {new.size} does not extend the size {old.size} "
                f"this witness cosigned ({e.message})"
            ) from e
    text = parse_note(new_note).text
    return Cosigned(new, new_note, witness.cosign(text, timestamp))
