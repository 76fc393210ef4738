"""``gateway send``, ``status send`` and ``inbox fetch`` against a scripted gateway: what they
submit is a strictly valid signed package, and what they print is what the gateway answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from scripted import Scripted
from trustkit import DIRECTORY_CSV, OTHER, SENDER

from gateway.cli import main
from gateway.directory import load_directory
from gateway.envelope import BusinessType, Kind, Package, make_document_id
from gateway.trust import init_keys, load_trust, verify_package

THIRD = "000.01.20.H07"
KEY = f"{SENDER}|{SENDER},2026/11/26,125/SNV-VP"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client")
    (root / "units.csv").write_text(DIRECTORY_CSV.format(pin=""), encoding="utf-8")
    init_keys(root / "keys", load_directory(root / "units.csv"))
    return root


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[Scripted]:
    s = Scripted()
    s.start()
    monkeypatch.setenv("GATEWAY_URL", s.url)
    monkeypatch.setenv("GATEWAY_TOKEN", "t")
    monkeypatch.setenv("GATEWAY_KEYS", str(folder / "keys"))
    monkeypatch.setenv("GATEWAY_DIRECTORY", str(folder / "units.csv"))
    yield s
    s.stop()


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def accept(server: Scripted, http_status: int = 202, **answer: Any) -> None:
    body = {"package_id": "p-1", "kind": "document", "document_key": KEY, "ledger_seq": 7}
    body |= {"recipients": [{"code": OTHER, "state": "queued", "delivery_id": "d-1"}]}
    body |= answer
    server.answers["POST", "submit"] = lambda: web.json_response(body, status=http_status)


def submitted(server: Scripted, folder: Path) -> Package:
    """The package the server received, verified in the strict profile."""
    data = server.seen[-1]["body"]
    directory = load_directory(folder / "units.csv")
    result = verify_package(data, load_trust(folder / "keys"), directory, "strict")
    assert result.signature_state == "valid"
    return result.package


def test_send_submits_a_signed_letter_and_prints_its_key(
    server: Scripted, folder: Path, tmp_path: Path
) -> None:
    accept(server)
    (tmp_path / "cong-van.pdf").write_bytes(b"%PDF-1.4 letter")
    result = run(
        "send",
        "--from",
        SENDER,
        "--to",
        f"{OTHER},{THIRD}",
        "--subject",
        "Về việc báo cáo",
        "--content",
        "Nội dung",
        "--attach",
        str(tmp_path / "cong-van.pdf"),
        "--priority",
        "2",
        "--number",
        "125",
        "--notation",
        "SNV-VP",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == KEY + "\n"
    assert result.stderr == f"accepted: ledger seq 7, recipients {OTHER} queued\n"
    package = submitted(server, folder)
    assert package.promulgation_date is not None
    assert package.document_id == make_document_id(
        SENDER, package.promulgation_date, "125", "SNV-VP"
    )
    assert [(r.organ_id, r.name) for r in package.recipients] == [
        (OTHER, "Sở Tài chính"),
        (THIRD, "Phòng Nội vụ huyện"),
    ]
    assert (package.sender.name, package.subject, package.content) == (
        "Sở Nội vụ",
        "Về việc báo cáo",
        "Nội dung",
    )
    assert package.priority == 2
    assert [(a.name, a.content_type, a.data) for a in package.attachments] == [
        ("cong-van.pdf", "application/pdf", b"%PDF-1.4 letter")
    ]
    assert server.seen[-1]["headers"]["Authorization"] == "Bearer t"


def test_send_revoke_names_its_target(server: Scripted, folder: Path) -> None:
    accept(server, http_status=200)
    target = f"{SENDER},2026/11/20,99/SNV-VP"
    result = run(
        "send",
        "--from",
        SENDER,
        "--to",
        OTHER,
        "--subject",
        "Thu hồi công văn",
        "--business",
        "revoke",
        "--target",
        f"{SENDER}|{target}",
        "--reason",
        "Sai số liệu",
    )
    assert result.exit_code == 0, result.output
    assert "already submitted" in result.stderr
    business = submitted(server, folder).business
    assert business is not None
    assert (business.doc_type, business.document_id) == (BusinessType.REVOKE, target)


def test_send_json_prints_the_whole_answer(server: Scripted) -> None:
    accept(server, signature_state="valid")
    result = run("send", "--from", SENDER, "--to", OTHER, "--subject", "S", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["document_key"], answer["signature_state"]) == (KEY, "valid")


def test_send_refused_prints_the_problem_and_exits_1(server: Scripted) -> None:
    problem = {"status": 409, "code": "duplicate_conflict", "detail": "other content"}
    server.answers["POST", "submit"] = lambda: web.json_response(
        problem, status=409, content_type="application/problem+json"
    )
    result = run("send", "--from", SENDER, "--to", OTHER, "--subject", "S", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == problem
    assert result.stderr == "ERROR 409 duplicate_conflict: other content\n"


def test_send_dry_run_writes_the_signed_package_without_submitting(
    server: Scripted, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN")
    out = tmp_path / "letter.edxml"
    result = run(
        "send", "--from", SENDER, "--to", OTHER, "--subject", "S", "--dry-run", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert server.seen == []
    directory = load_directory(folder / "units.csv")
    package = verify_package(out.read_bytes(), load_trust(folder / "keys"), directory).package
    assert result.stdout == package.document_key + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--business", "revoke"], "--business and --target go together"),
        (["--reason", "x"], "--reason goes with --business"),
        (["--business", "update", "--target", "99/CV"], "is not a DocumentId"),
        (["--number", "1/2"], "number"),
        (["--to", OTHER], "named twice"),
    ],
)
def test_send_usage_errors_exit_2(server: Scripted, args: list[str], message: str) -> None:
    result = run("send", "--from", SENDER, "--to", OTHER, "--subject", "S", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert server.seen == []


def test_send_without_a_key_for_the_sender_exits_2(server: Scripted) -> None:
    result = run("send", "--from", "000.00.99.H07", "--to", OTHER, "--subject", "S")
    assert result.exit_code == 2
    assert "the key of 000.00.99.H07 is missing" in result.stderr
    assert server.seen == []


def test_status_send_answers_the_document_of_the_key(server: Scripted, folder: Path) -> None:
    accept(server, kind="status", status="03")
    result = run(
        "status", "send", "--from", OTHER, "--document", KEY, "--code", "03", "--description", "OK"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK status 03 for {KEY}: ledger seq 7, to {OTHER} queued\n"
    package = submitted(server, folder)
    assert package.kind is Kind.STATUS
    assert package.document_key == KEY
    assert package.status is not None
    assert (package.status.code, package.status.description) == ("03", "OK")
    assert package.status.response_for.code == "125/SNV-VP"


def test_status_send_refuses_a_malformed_key_and_an_unknown_code(server: Scripted) -> None:
    bad_key = run("status", "send", "--from", OTHER, "--document", "125/SNV-VP", "--code", "01")
    assert bad_key.exit_code == 2
    assert "not a document key" in bad_key.stderr
    bad_code = run("status", "send", "--from", OTHER, "--document", KEY, "--code", "07")
    assert bad_code.exit_code == 2
    assert server.seen == []


def test_inbox_fetch_writes_the_exact_bytes_and_says_the_signature_state(
    server: Scripted, tmp_path: Path
) -> None:
    data = b"<?xml version='1.0' encoding='UTF-8'?>\r\n<edXML>\xc3\xa1</edXML>"
    server.answers["GET", "fetch"] = lambda: web.Response(
        body=data,
        content_type="application/xml",
        headers={"X-Gateway-Document-Key": KEY, "X-Gateway-Signature-State": "absent"},
    )
    out = tmp_path / "in.edxml"
    result = run("inbox", "fetch", "d-7", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == data
    assert result.stdout == f"OK d-7 {KEY} signature=absent {len(data)} bytes -> {out}\n"
    to_stdout = run("inbox", "fetch", "d-7")
    assert to_stdout.stdout_bytes == data
    assert "signature=absent" in to_stdout.stderr
