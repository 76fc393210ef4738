"""The client commands against a running gateway (embedded stack, real HTTP): send, submit,
inbox list/fetch/extract/ack, status send/show, receipts verified against the pinned gateway
key, and the gateway's refusals as ERROR lines with exit code 1."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gatewaystack import OUTSIDER, PULL, PUSH, SENDER, Stack

from gateway.cli import main
from gateway.client import build_letter, make_attachment, sign_as_unit, unit
from gateway.envelope import Organization, Package, build_package, parse_package
from gateway.ledger import Query
from gateway.ledger.receipt import public_key_pem

# The client does not care which bus or database the gateway runs on: the embedded stack.
pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_URL", "GATEWAY_TOKEN", "GATEWAY_KEYS", "GATEWAY_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


async def gateway(stack: Stack, who: str | None, *args: str, stdin: bytes | None = None) -> Result:
    """Run ``gateway ARGS`` as ``who`` (a unit or role of the stack) in a thread, since the
    command runs its own event loop while the gateway serves from this one; ``stdin`` is
    its standard input."""
    login = ["--url", stack.url, "--token", stack.tokens[who] if who else "gw_nope_nope"]
    command = list(args)
    # --url and --token belong to the leaf command: after the group and command names.
    split = 2 if command[0] in ("inbox", "status") else 1
    argv = [*command[:split], *login, *command[split:]]
    return await asyncio.to_thread(
        CliRunner().invoke, main, argv, input=stdin, catch_exceptions=False
    )


def signing(stack: Stack) -> list[str]:
    return ["--keys", str(stack.keys), "--directory", str(stack.keys.parent / "units.csv")]


async def inbox(stack: Stack, who: str) -> list[dict[str, Any]]:
    result = await gateway(stack, who, "inbox", "list", "--all", "--json")
    assert result.exit_code == 0, result.output
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


async def waiting(stack: Stack, who: str, key: str, kind: str) -> list[dict[str, Any]]:
    """The unit's inbox items of ``key`` and ``kind``, once there is at least one."""
    for _ in range(100):
        found = [
            i for i in await inbox(stack, who) if i["document_key"] == key and i["kind"] == kind
        ]
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing of {key} in the inbox of {who}")


async def test_a_letter_sent_fetched_acknowledged_answered_and_proven(
    stack: Stack, tmp_path: Path
) -> None:
    (tmp_path / "cong-van.pdf").write_bytes(b"%PDF-1.4 the letter itself")
    sent_file = tmp_path / "sent.edxml"
    sent = await gateway(
        stack,
        SENDER,
        "send",
        *signing(stack),
        "--from",
        SENDER,
        "--to",
        f"{PULL},{PUSH}",
        "--subject",
        "Về việc báo cáo công tác cải cách hành chính",
        "--attach",
        str(tmp_path / "cong-van.pdf"),
        "--priority",
        "1",
        "-o",
        str(sent_file),
    )
    assert sent.exit_code == 0, sent.output
    key = sent.stdout.strip()
    assert key == f"{SENDER}|{parse_package(sent_file.read_bytes()).document_id}"
    assert sent.stderr.startswith("accepted: ledger seq ")
    # The push unit's webhook may have taken its copy before the answer was written.
    assert re.search(rf"recipients {PULL} queued, {PUSH} (accepted|queued|delivered)$", sent.stderr)

    # The pull unit lists, fetches the exact bytes, acknowledges.
    (item,) = await waiting(stack, PULL, key, "document")
    listed = await gateway(stack, PULL, "inbox", "list")
    assert f"{item['delivery_id']}  document  {key}  from={SENDER}  signature=valid" in (
        listed.stdout
    )
    fetched_file = tmp_path / "fetched.edxml"
    fetched = await gateway(
        stack, PULL, "inbox", "fetch", item["delivery_id"], "-o", str(fetched_file)
    )
    assert fetched.exit_code == 0, fetched.output
    assert fetched_file.read_bytes() == sent_file.read_bytes()
    assert "signature=valid" in fetched.stdout
    acked = await gateway(stack, PULL, "inbox", "ack", item["delivery_id"])
    assert acked.stdout == f"OK {item['delivery_id']} state=delivered\n"

    # Statuses 01 -> 03 -> 06 travel back to the sender.
    for code in ("01", "03", "06"):
        answered = await gateway(
            stack, PULL, "status", "send", *signing(stack), "--from", PULL, "--document", key,
            "--code", code, "--description", f"status {code}",
        )  # fmt: skip
        assert answered.exit_code == 0, answered.output
        assert answered.stdout.startswith(f"OK status {code} for {key}: ledger seq ")
        assert answered.stdout.rstrip().endswith(f"to {SENDER} queued")
    back = await waiting(stack, SENDER, key, "status")
    assert {i["status"] for i in back} <= {"01", "03", "06"}

    shown = await gateway(stack, SENDER, "status", "show", key)
    assert shown.exit_code == 0, shown.output
    line = next(s for s in shown.stdout.splitlines() if s.startswith(f"  {PULL}  "))
    assert line.startswith(f"  {PULL}  delivered ")
    assert [part.split("@")[0] for part in line.split("statuses: ")[1].split()] == [
        "01",
        "03",
        "06",
    ]

    # Receipts: verified against the key they carry and against the pinned gateway key.
    pinned = stack.keys / "gateway" / "cert.pem"
    proven = await gateway(
        stack, SENDER, "receipts", key, "--key", str(pinned), "-o", str(tmp_path / "r")
    )
    assert proven.exit_code == 0, proven.output
    lines = proven.stdout.splitlines()
    assert all(s.endswith("receipt-key=ok pinned-key=ok") for s in lines)
    events = [s.split("  ")[1:4] for s in lines]
    assert events[0] == ["submitted", "-", "-"]
    assert ["status", SENDER, "06"] in events
    (saved,) = (tmp_path / "r").iterdir()
    audit = await asyncio.to_thread(
        CliRunner().invoke, main, ["audit", "verify-receipt", str(saved), "--key", str(pinned)]
    )
    assert audit.exit_code == 0, audit.output

    # Checked against some other Ed25519 key, the receipt fails, and says so.
    other = tmp_path / "other.pub"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    refused = await gateway(stack, SENDER, "receipts", key, "--key", str(other))
    assert refused.exit_code == 1
    assert refused.stdout.splitlines()[0].endswith("receipt-key=ok pinned-key=FAILED")


async def test_recall_and_revoke_through_the_commands(stack: Stack) -> None:
    sent = await gateway(
        stack, SENDER, "send", *signing(stack), "--from", SENDER, "--to", PULL,
        "--subject", "Công văn sẽ được thu hồi", "--json",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    answer = json.loads(sent.stdout)
    key = answer["document_key"]
    assert answer["kind"] == "document" and answer["signature_state"] == "valid"

    recall = await gateway(
        stack, SENDER, "status", "send", *signing(stack), "--from", SENDER, "--document", key,
        "--code", "13", "--json",
    )  # fmt: skip
    assert recall.exit_code == 0, recall.output
    assert [r["code"] for r in json.loads(recall.stdout)["recipients"]] == [PULL]

    revoke = await gateway(
        stack, SENDER, "send", *signing(stack), "--from", SENDER, "--to", PULL,
        "--subject", "Thu hồi công văn", "--business", "revoke", "--target", key,
        "--reason", "Ban hành nhầm",
    )  # fmt: skip
    assert revoke.exit_code == 0, revoke.output
    (item,) = [
        i
        for i in await waiting(stack, PULL, revoke.stdout.strip(), "document")
        if i["document_key"] == revoke.stdout.strip()
    ]
    fetched = await gateway(stack, PULL, "inbox", "fetch", item["delivery_id"])
    business = parse_package(fetched.stdout_bytes).business
    assert business is not None and int(business.doc_type) == 1
    assert business.document_id == key.split("|", 1)[1]


@pytest.mark.parametrize(
    ("who", "args", "expected"),
    [
        (SENDER, ["--to", "000.00.99.H07"], "ERROR 422 unknown_recipient: "),
        (PULL, ["--to", PULL], "ERROR 403 forbidden: "),  # a token of another unit
        (None, ["--to", PULL], "ERROR 401 unauthenticated: "),
        (
            SENDER,
            ["--to", PULL, "--business", "revoke", "--target", f"{SENDER},2026/01/02,1/XX"],
            "ERROR 422 business_target_unknown: ",
        ),
    ],
)
async def test_refusals_are_error_lines_with_exit_1(
    stack: Stack, who: str | None, args: list[str], expected: str
) -> None:
    result = await gateway(
        stack, who, "send", *signing(stack), "--from", SENDER, "--subject", "Về việc", *args
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(expected)
    assert result.stdout == ""


async def test_same_number_again_is_a_conflict_and_other_units_cannot_touch_the_inbox(
    stack: Stack,
) -> None:
    args = ["send", *signing(stack), "--from", SENDER, "--to", PULL, "--subject", "Về việc"]
    first = await gateway(stack, SENDER, *args, "--number", "501")
    assert first.exit_code == 0, first.output
    # ECDSA signatures differ each time: the same DocumentId with other bytes.
    again = await gateway(stack, SENDER, *args, "--number", "501", "--json")
    assert again.exit_code == 1
    assert json.loads(again.stdout)["code"] == "duplicate_conflict"
    assert again.stderr.startswith("ERROR 409 duplicate_conflict: ")

    (item,) = await waiting(stack, PULL, first.stdout.strip(), "document")
    for command in (["inbox", "fetch", item["delivery_id"]], ["inbox", "ack", item["delivery_id"]]):
        refused = await gateway(stack, OUTSIDER, *command)  # as unknown as a missing copy
        assert refused.exit_code == 1
        assert refused.stderr.startswith("ERROR 404 not_found: ")


async def test_several_copies_are_acknowledged_in_one_command_each_with_its_line(
    stack: Stack,
) -> None:
    args = ["send", *signing(stack), "--from", SENDER, "--to", PULL, "--subject", "Về việc"]
    keys = []
    for number in ("601", "602", "603"):
        sent = await gateway(stack, SENDER, *args, "--number", number)
        assert sent.exit_code == 0, sent.output
        keys.append(sent.stdout.strip())
    ids = [(await waiting(stack, PULL, key, "document"))[0]["delivery_id"] for key in keys]

    signed = await gateway(
        stack, PULL, "inbox", "ack", ids[0], ids[1], "--keys", str(stack.keys), "--unit", PULL
    )
    assert signed.exit_code == 0, signed.output
    assert signed.stdout == f"OK {ids[0]} state=delivered\nOK {ids[1]} state=delivered\n"
    for key in keys[:2]:
        entries = (await stack.runtime.ledger.query(Query(document=key))).entries
        (delivered,) = [e for e in entries if e.event.type.value == "delivered"]
        assert delivered.event.details["ack"] == "signed"

    mixed = await gateway(stack, PULL, "inbox", "ack", ids[2], "d-nope", "--fail", "đĩa đầy")
    assert mixed.exit_code == 1
    assert mixed.stdout.splitlines() == [
        f"OK {ids[2]} state=retrying",
        "REFUSED d-nope not_found: no inbox item d-nope",
    ]


async def test_a_gateway_that_does_not_answer_exits_2(stack: Stack) -> None:
    stack.url = "http://127.0.0.1:9"  # discard: nothing listens
    result = await gateway(stack, SENDER, "inbox", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach the gateway at http://127.0.0.1:9")


def hostile_letter(stack: Stack, number: str, sender: str = SENDER) -> Package:
    """A letter whose attachment names try to leave the folder they are extracted to (its
    number given: two letters made in the same millisecond would share a DocumentId)."""
    names = ["../../x", "/etc/passwd", "CON", "invoice\u202efdp.exe", "a.pdf", "A.PDF"]
    names += ["Công văn số 12.pdf", "..", "sub\\dir\\..\\..\\y.txt"]
    return build_letter(
        unit(sender),
        [Organization(PULL, "Sở Tài chính")],
        "Về việc gửi tệp đính kèm",
        attachments=[
            make_attachment(n, f"content {i}".encode(), i) for i, n in enumerate(names, 1)
        ],
        number=number,
    )


async def test_existing_files_are_submitted_one_line_each(stack: Stack, tmp_path: Path) -> None:
    unsigned = tmp_path / "unsigned.edxml"
    unsigned.write_bytes(build_package(hostile_letter(stack, "1")))
    signed = tmp_path / "signed.edxml"
    signed.write_bytes(sign_as_unit(hostile_letter(stack, "2"), stack.keys))
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<edXML><not closed")
    foreign = tmp_path / "foreign.edxml"  # another unit's letter: not this token's to send
    foreign.write_bytes(sign_as_unit(hostile_letter(stack, "3", OUTSIDER), stack.keys))
    files = [str(p) for p in (unsigned, signed, broken, foreign)]

    # Without keys the unsigned file goes as it is, and the gateway refuses it.
    result = await gateway(stack, SENDER, "submit", *files)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ERROR {unsigned} signature_missing: ")
    assert re.fullmatch(rf"OK {signed} {re.escape(SENDER)}\|\S+", lines[1])
    assert lines[2].startswith(f"ERROR {broken} xml_malformed: ")
    assert lines[3].startswith(f"ERROR {foreign} forbidden: ")
    assert len(lines) == 4 and result.stderr == "1 accepted, 3 refused\n"

    # With keys the unsigned file is signed as its sender; the signed one is sent again as
    # it is (the gateway's first answer); - reads standard input.
    result = await gateway(
        stack, SENDER, "submit", "--sign-with-keys", str(stack.keys), str(unsigned), str(signed),
        "-", stdin=signed.read_bytes(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first, again, piped = result.stdout.splitlines()
    key = parse_package(signed.read_bytes()).document_key
    assert first.startswith(f"OK {unsigned} {SENDER}|") and first.endswith(" signed-here")
    assert again == f"OK {signed} {key} already-submitted"
    assert piped == f"OK - {key} already-submitted"

    as_json = await gateway(stack, SENDER, "submit", "--json", str(signed), str(broken))
    assert as_json.exit_code == 1
    answers = json.loads(as_json.stdout)
    assert [(a["ok"], a["status"]) for a in answers] == [(True, 200), (False, 400)]
    assert answers[0]["answer"]["document_key"] == key and answers[1]["code"] == "xml_malformed"

    # A key folder without the sender's key is the environment's fault: exit 2.
    empty = tmp_path / "no-keys"
    empty.mkdir()
    result = await gateway(stack, SENDER, "submit", "--sign-with-keys", str(empty), str(unsigned))
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


async def test_attachments_are_extracted_under_safe_names(stack: Stack, tmp_path: Path) -> None:
    data = sign_as_unit(hostile_letter(stack, "4"), stack.keys)
    sent = tmp_path / "sent.edxml"
    sent.write_bytes(data)
    assert (await gateway(stack, SENDER, "submit", str(sent))).exit_code == 0
    key = parse_package(data).document_key
    (item,) = await waiting(stack, PULL, key, "document")
    folder = tmp_path / "work" / "letter"
    folder.mkdir(parents=True)
    outside = tmp_path / "work" / "x"
    os.symlink(outside, folder / "y.txt")  # planted: must not be written through

    result = await gateway(
        stack, PULL, "inbox", "extract", item["delivery_id"], "--to", str(folder)
    )
    assert result.exit_code == 0, result.output
    names = ["x", "passwd", "_CON", "invoice_fdp.exe", "a.pdf", "A-2.PDF", "Công văn số 12.pdf"]
    names += ["attachment-8", "y-2.txt"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "y.txt"])
    for i, name in enumerate(names, 1):
        assert (folder / name).read_bytes() == f"content {i}".encode()
    assert not outside.exists() and not (tmp_path / "x").exists()
    assert f"{folder.resolve() / 'x'}  9 bytes  application/octet-stream  (named '../../x')" in (
        result.stdout.splitlines()
    )

    # --json names each file and its digest; the copy stays in the inbox until acknowledged.
    again = await gateway(
        stack, PULL, "inbox", "extract", item["delivery_id"], "--to", str(tmp_path / "j"), "--json"
    )
    files = json.loads(again.stdout)["files"]
    assert [Path(f["path"]).name for f in files] == [*names[:-1], "y.txt"]
    assert files[0]["sha256"] == hashlib.sha256(b"content 1").hexdigest()
    assert [i["delivery_id"] for i in await inbox(stack, PULL)] == [item["delivery_id"]]

    refused = await gateway(stack, OUTSIDER, "inbox", "extract", item["delivery_id"], "--to", "z")
    assert refused.exit_code == 1 and refused.stderr.startswith("ERROR 404 not_found: ")
