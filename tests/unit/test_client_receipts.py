"""``gateway receipts``: receipts fetched from a scripted gateway are verified offline, against
the key they carry and against the key the user pins."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scripted import Scripted

from gateway.cli import main
from gateway.ledger.checkpoint import Checkpoint, NoteSigner
from gateway.ledger.entry import Entry, Event, EventType
from gateway.ledger.merkle import CompactRange, NodeId, build_proof, inclusion_plan
from gateway.ledger.receipt import ReceiptEntry, build_receipt, public_key_pem

ORIGIN = "gateway.test/ledger"
DOC = "000.00.05.H07|000.00.05.H07,2026/11/26,125/SNV-VP"
KEY = Ed25519PrivateKey.generate()
SIGNER = NoteSigner(ORIGIN, KEY)
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
EVENTS = [
    Event(EventType.SUBMITTED, document=DOC, sender="000.00.05.H07"),
    Event(EventType.QUEUED, document=DOC, sender="000.00.05.H07", recipient="000.00.06.H07"),
    Event(EventType.DELIVERED, document=DOC, sender="000.00.05.H07", recipient="000.00.06.H07"),
    Event(
        EventType.STATUS,
        document=DOC,
        sender="000.00.06.H07",
        recipient="000.00.05.H07",
        code="03",
    ),
]


def receipts(signer: NoteSigner = SIGNER) -> list[dict[str, Any]]:
    """One receipt per entry of a four-entry log, as the gateway serves them."""
    entries = [Entry(i, T0 + timedelta(seconds=i), e) for i, e in enumerate(EVENTS)]
    tree = CompactRange()
    nodes: dict[NodeId, bytes] = {}
    for e in entries:
        nodes[(0, e.seq)] = e.leaf_hash
        nodes.update(tree.append(e.leaf_hash))
    n = len(entries)
    note = Checkpoint(ORIGIN, n, tree.root()).sign(signer)
    out = []
    for e in entries:
        item = ReceiptEntry(e.seq, e.data, tuple(build_proof(inclusion_plan(e.seq, n), nodes)))
        out.append(json.loads(build_receipt(note, [item], signer).dumps()))
    return out


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    s.start()
    yield s
    s.stop()


def serve(server: Scripted, found: list[dict[str, Any]]) -> None:
    server.answers["GET", "receipts"] = lambda: web.json_response({"receipts": found})


def run(server: Scripted, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["receipts", DOC, "--url", server.url, "--token", "t", *args],
        catch_exceptions=False,
    )


@pytest.fixture
def pinned(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.pub"
    path.write_text(public_key_pem(KEY.public_key()))
    return path


def test_each_entry_is_listed_and_checked_against_the_receipts_own_key(server: Scripted) -> None:
    serve(server, receipts())
    result = run(server)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "0  submitted  -  -  receipt-key=ok pinned-key=-",
        "1  queued  000.00.06.H07  -  receipt-key=ok pinned-key=-",
        "2  delivered  000.00.06.H07  -  receipt-key=ok pinned-key=-",
        "3  status  000.00.05.H07  03  receipt-key=ok pinned-key=-",
    ]
    assert "no --key given" in result.stderr


def test_a_pinned_key_is_checked_too(server: Scripted, pinned: Path) -> None:
    serve(server, receipts())
    result = run(server, "--key", str(pinned), "--recipient", "000.00.06.H07")
    assert result.exit_code == 0, result.output
    assert all(line.endswith("receipt-key=ok pinned-key=ok") for line in result.stdout.splitlines())
    assert server.seen[0]["query"] == {"document": DOC, "recipient": "000.00.06.H07"}


def test_receipts_signed_by_another_key_fail_the_pinned_check(
    server: Scripted, pinned: Path
) -> None:
    forger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    serve(server, receipts(forger))
    result = run(server, "--key", str(pinned))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "0  submitted  -  -  receipt-key=ok pinned-key=FAILED"
    assert "problem: " in result.stdout


def test_a_tampered_entry_fails_even_without_a_pinned_key(server: Scripted) -> None:
    found = receipts()
    forged = copy.deepcopy(found[1])
    forged["entries"][0]["event"]["recipient"] = "000.00.99.H07"
    serve(server, [found[0], forged])
    result = run(server, "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["verified"] is False
    assert [r["receipt_key"] for r in answer["receipts"]] == [True, False]
    assert "differs from the signed entry bytes" in answer["receipts"][1]["problem"]
    # the failed receipt still shows what it claims
    assert answer["receipts"][1]["entries"][0]["recipient"] == "000.00.99.H07"


def test_saved_receipts_verify_with_gateway_audit(
    server: Scripted, tmp_path: Path, pinned: Path
) -> None:
    serve(server, receipts())
    result = run(server, "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    saved = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert saved == [f"receipt-{i}.json" for i in range(4)]
    audit = CliRunner().invoke(
        main,
        ["audit", "verify-receipt", str(tmp_path / "r" / "receipt-3.json"), "--key", str(pinned)],
    )
    assert audit.exit_code == 0, audit.output
    assert audit.output.startswith("OK ")


def test_no_receipt_is_a_failure(server: Scripted) -> None:
    serve(server, [])
    result = run(server)
    assert result.exit_code == 1
    assert f"no receipts for {DOC}" in result.stderr


def test_an_unreadable_pinned_key_is_an_environment_error(server: Scripted) -> None:
    serve(server, receipts())
    result = run(server, "--key", "not-a-key")
    assert result.exit_code == 2
    assert "--key not-a-key" in result.stderr
