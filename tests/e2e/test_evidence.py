"""Evidence against a running gateway (embedded stack, real HTTP): signed and unsigned
acknowledgements under the per-unit policy, a witness cosigning checkpoints and refusing a
forked log, and a letter's evidence bundle checked offline after the database is gone, with
every member's changed byte named."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gatewaystack import (
    NATIVE,
    OUTSIDER,
    PULL,
    PUSH,
    SENDER,
    Stack,
    Webhook,
    directory_csv,
    native_consume,
    open_stack,
)
from sqlalchemy import select, text, update

from gateway.cli import main
from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    build_status,
    sign_acknowledgement,
    sign_as_unit,
    unit,
)
from gateway.config import LedgerSettings
from gateway.db.engine import write_transaction
from gateway.envelope import Organization
from gateway.ledger import EventType, Query
from gateway.ledger.cosignature import Witness
from gateway.ledger.entry import parse_entry
from gateway.ledger.merkle import CompactRange, leaf_hash
from gateway.ledger.models import entry_table
from gateway.ledger.receipt import load_verifier, verify_receipt

WITNESS_NAME = "witness.test"


@pytest.fixture(scope="module")
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(params=["embedded"])
async def gw(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    webhook: tuple[Webhook, str],
    witness_key: Ed25519PrivateKey,
) -> AsyncIterator[Stack]:
    """A gateway that requires PULL to sign its acknowledgements and keeps the cosignatures of
    one witness, whose key waits in tmp_path/witness-keys as `gateway witness` would make it."""
    hook, url = webhook
    folder = tmp_path / "witness-keys"
    folder.mkdir()
    pem = witness_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (folder / "witness.key").write_bytes(pem)
    vkey = Witness(WITNESS_NAME, witness_key).vkey
    (folder / "witness.vkey").write_text(vkey + "\n")
    ledger = LedgerSettings(
        origin="gateway.test/ledger", checkpoint_entries=1000, witnesses=(vkey,), signed_ack=(PULL,)
    )
    async with open_stack(request, tmp_path, hook, directory_csv(url), ledger=ledger) as opened:
        yield opened


async def cli(*argv: str) -> Result:
    """``gateway ARGV`` in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(argv), catch_exceptions=False)


async def send(stack: Stack, *to: str) -> tuple[str, dict[str, str]]:
    """A letter from SENDER; its document key and each recipient's delivery id."""
    recipients = [Organization(code, "Sở") for code in to]
    data = sign_as_unit(build_letter(unit(SENDER), recipients, "Về việc ký nhận"), stack.keys)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as client:
        submitted = await client.submit(data)
    copies = {r["code"]: r["delivery_id"] for r in submitted.answer["recipients"]}
    return submitted.document_key, copies


async def ack(stack: Stack, who: str, delivery_id: str, signed: bool) -> dict[str, Any]:
    async with GatewayClient(stack.url, stack.tokens[who]) as client:
        statement = None
        if signed:
            fetched = await client.fetch(delivery_id)
            statement = sign_acknowledgement(delivery_id, fetched.data, who, stack.keys)
        return await client.ack(delivery_id, acknowledgement=statement)


def gateway_cert(stack: Stack) -> str:
    return str(stack.keys / "gateway" / "cert.pem")


@pytest.mark.parametrize("gw", ["embedded", "rabbitmq+postgresql"], indirect=True)
async def test_one_recipient_signs_its_acknowledgement_the_other_may_not(gw: Stack) -> None:
    key, copies = await send(gw, PULL, OUTSIDER)
    async with GatewayClient(gw.url, gw.tokens[PULL]) as client:
        # PULL's policy requires a signature: a plain done is refused, and nothing moves.
        with pytest.raises(ApiError) as refused:
            await client.ack(copies[PULL])
        assert refused.value.code == "ack_signature_required"
        fetched = await client.fetch(copies[PULL])
        # A statement about another copy, or signed by another unit's key, is refused too.
        other = sign_acknowledgement(copies[OUTSIDER], fetched.data, PULL, gw.keys)
        with pytest.raises(ApiError) as wrong_copy:
            await client.ack(copies[PULL], acknowledgement=other)
        assert wrong_copy.value.code == "ack_invalid"
        forged = sign_acknowledgement(copies[PULL], fetched.data, SENDER, gw.keys)
        with pytest.raises(ApiError) as wrong_signer:
            await client.ack(copies[PULL], acknowledgement=forged)
        assert wrong_signer.value.code == "ack_invalid"
    assert (await ack(gw, PULL, copies[PULL], signed=True))["state"] == "delivered"
    assert (await ack(gw, OUTSIDER, copies[OUTSIDER], signed=False))["state"] == "delivered"

    page = await gw.runtime.ledger.query(Query(document=key, events=(EventType.DELIVERED,)))
    how = {e.event.recipient: e.event.details for e in page.entries}
    assert how[PULL]["ack"] == "signed" and len(how[PULL]["ack_sha256"]) == 64
    assert how[OUTSIDER]["ack"] == "unsigned" and "ack_sha256" not in how[OUTSIDER]

    async with GatewayClient(gw.url, gw.tokens[SENDER]) as client:
        (mine,) = await client.receipts(key, PULL)
        (theirs,) = await client.receipts(key, OUTSIDER)
    trusted = load_verifier((gw.keys / "gateway" / "cert.pem").read_text())
    verified = verify_receipt(mine, trusted)
    (statement,) = verified.acknowledgements
    assert (statement.delivery_id, statement.recipient) == (copies[PULL], PULL)
    assert verify_receipt(theirs, trusted).acknowledgements == ()
    # A statement swapped into the receipt is one no delivered entry names.
    mine["acknowledgements"] = [forged]
    with pytest.raises(Exception, match="named by no delivered entry"):
        verify_receipt(mine, trusted)


@pytest.mark.parametrize("gw", ["rabbitmq+postgresql"], indirect=True)
async def test_a_webhooks_answer_and_an_amqp_units_first_status_carry_signed_acknowledgements(
    gw: Stack,
) -> None:
    gw.webhook.sign = lambda delivery_id, body: sign_acknowledgement(
        delivery_id, body, PUSH, gw.keys
    )
    key, copies = await send(gw, PUSH, NATIVE)
    consumed = await native_consume(gw, NATIVE)
    statement = sign_acknowledgement(consumed.delivery_id, consumed.body, NATIVE, gw.keys)
    arrived = sign_as_unit(build_status(unit(NATIVE), key, "01"), gw.keys)
    async with GatewayClient(gw.url, gw.tokens[NATIVE]) as client:
        await client._request(
            "POST",
            "/v1/packages",
            data=arrived,
            headers={"Content-Type": "application/xml", "X-Gateway-Acknowledgement": statement},
        )
    ledger = gw.runtime.ledger

    async def delivered() -> dict[str, Any]:
        page = await ledger.query(Query(document=key, events=(EventType.DELIVERED,)))
        return {e.event.recipient: e.event.details for e in page.entries}

    for _ in range(100):
        if len(how := await delivered()) == 2:
            break
        await asyncio.sleep(0.1)
    assert how[PUSH]["ack"] == how[NATIVE]["ack"] == "signed", how
    async with GatewayClient(gw.url, gw.tokens[SENDER]) as client:
        (receipt,) = await client.receipts(key)
    trusted = load_verifier((gw.keys / "gateway" / "cert.pem").read_text())
    said = {s.recipient: s.delivery_id for s in verify_receipt(receipt, trusted).acknowledgements}
    assert said == {PUSH: copies[PUSH], NATIVE: copies[NATIVE]}


async def cosign(stack: Stack, tmp_path: Path) -> Result:
    return await cli(
        "witness",
        "cosign",
        "--url",
        stack.url,
        "--token",
        stack.tokens["auditor"],
        "--state",
        str(tmp_path / "witness-state"),
        "--keys",
        str(tmp_path / "witness-keys"),
        "--key",
        gateway_cert(stack),
    )


async def rewrite_entry(stack: Stack, seq: int) -> None:
    """What an operator with the database could do: drop the append-only triggers, rewrite
    one entry and recompute every hash after it."""
    async with write_transaction(stack.runtime.ledger.engine) as conn:
        for action in ("update", "delete"):
            await conn.execute(text(f"DROP TRIGGER ledger_entry_no_{action}"))
        rows = (await conn.execute(select(entry_table).order_by(entry_table.c.seq))).all()
        tree = CompactRange()
        for row in rows:
            data = row.data
            if row.seq == seq:
                obj = json.loads(data)
                obj["details"]["note"] = "rewritten"
                data = json.dumps(
                    obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode()
                parse_entry(data)
            leaf = leaf_hash(data)
            nodes = b"".join(h for _, h in tree.append(leaf))
            if row.seq >= seq:
                await conn.execute(
                    update(entry_table)
                    .where(entry_table.c.seq == row.seq)
                    .values(data=data, leaf_hash=leaf, nodes=nodes)
                )


async def test_a_witness_cosigns_a_growing_log_and_refuses_a_forked_one(
    gw: Stack, tmp_path: Path
) -> None:
    ledger = gw.runtime.ledger
    for _ in range(3):
        key, _ = await send(gw, OUTSIDER)
        await ledger.checkpoint()
        done = await cosign(gw, tmp_path)
        assert done.exit_code == 0, done.output
        assert f"OK cosigned gateway.test/ledger at size {await ledger.size()}" in done.output
    # The receipt carries the cosignature; verify-receipt requires it when asked.
    async with GatewayClient(gw.url, gw.tokens[SENDER]) as client:
        (receipt,) = await client.receipts(key)
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(receipt))
    vkey = str(tmp_path / "witness-keys" / "witness.vkey")
    checked = await cli(
        "audit", "verify-receipt", str(file), "--key", gateway_cert(gw), "--witness-key", vkey
    )
    assert checked.exit_code == 0, checked.output
    assert f"cosigned by witness {WITNESS_NAME}" in checked.output
    stranger = tmp_path / "stranger.vkey"
    stranger.write_text(Witness("other.witness", Ed25519PrivateKey.generate()).vkey)
    unwitnessed = await cli(
        "audit",
        "verify-receipt",
        str(file),
        "--key",
        gateway_cert(gw),
        "--witness-key",
        str(stranger),
    )
    assert unwitnessed.exit_code == 1
    assert "0 cosignature(s) by the witnesses given, 1 required" in unwitnessed.output

    # History rewritten below the cosigned size, then the log grows and is checkpointed.
    cosigned_size = await ledger.size()
    before = (tmp_path / "witness-state" / "checkpoint").read_text()
    await rewrite_entry(gw, cosigned_size - 2)
    await send(gw, OUTSIDER)
    await ledger.checkpoint()
    refused = await cosign(gw, tmp_path)
    assert refused.exit_code == 1, refused.output
    assert "REFUSED: the log FORKED" in refused.output
    assert (tmp_path / "witness-state" / "checkpoint").read_text() == before
    print(refused.output)


async def test_a_letters_bundle_proves_it_offline_and_names_any_changed_member(
    gw: Stack, tmp_path: Path
) -> None:
    key, copies = await send(gw, PULL, OUTSIDER)
    await ack(gw, PULL, copies[PULL], signed=True)
    await ack(gw, OUTSIDER, copies[OUTSIDER], signed=False)
    status = sign_as_unit(build_status(unit(PULL), key, "01"), gw.keys)
    async with GatewayClient(gw.url, gw.tokens[PULL]) as client:
        await client.submit(status)
    await gw.runtime.ledger.checkpoint()
    assert (await cosign(gw, tmp_path)).exit_code == 0
    bundle = tmp_path / "letter.zip"
    written = await cli(
        "audit", "bundle", key, "-o", str(bundle), "--url", gw.url, "--token", gw.tokens[SENDER]
    )
    assert written.exit_code == 0, written.output

    for db in (gw.runtime.settings.home).glob("ledger.db*"):
        db.unlink()
    vkey = str(tmp_path / "witness-keys" / "witness.vkey")
    checked = await cli(
        "audit", "verify-bundle", str(bundle), "--key", gateway_cert(gw), "--witness-key", vkey
    )
    print(checked.output)
    assert checked.exit_code == 0, checked.output
    out = checked.output
    assert f"OK {bundle}: evidence of {key}" in out
    assert f"sent: {SENDER} sent package.xml" in out
    assert f"witness: {WITNESS_NAME} cosigned that checkpoint" in out
    assert f"acknowledged: {PULL} signed that it received copy {copies[PULL]}" in out
    assert f"delivered: to {PULL} at" in out and "with a signed acknowledgement" in out
    assert f"delivered: to {OUTSIDER} at" in out and "with an unsigned acknowledgement" in out
    assert f"status: {PULL} sent status 01 about the letter" in out

    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        contents = {n: z.read(n) for n in names}
        stored = {n: z.getinfo(n).compress_type for n in names}
    assert names[0] == "mimetype" and stored["mimetype"] == zipfile.ZIP_STORED
    assert any(n.startswith("acknowledgements/") for n in names)
    assert any(n.startswith("statuses/") for n in names)
    for name in names:
        changed = bytearray(contents[name])
        changed[len(changed) // 2] ^= 0x01
        tampered = tmp_path / "tampered.zip"
        out_zip = io.BytesIO()
        with zipfile.ZipFile(out_zip, "w") as z:
            for n in names:
                z.writestr(n, bytes(changed) if n == name else contents[n], stored[n])
        tampered.write_bytes(out_zip.getvalue())
        refused = await cli("audit", "verify-bundle", str(tampered), "--key", gateway_cert(gw))
        assert refused.exit_code == 1, (name, refused.output)
        assert refused.output.startswith(f"INVALID {tampered}: {name}: "), refused.output
