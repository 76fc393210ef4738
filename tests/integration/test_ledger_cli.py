"""`gateway db`, `gateway ledger` and `gateway audit` as an operator and an auditor use them."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from gateway.cli import main
from gateway.db.engine import create_engine
from gateway.db.migrate import head_revision
from gateway.db.testing import discard_database, prepare_database
from gateway.ledger.checkpoint import NoteSigner
from gateway.ledger.entry import Event, EventType
from gateway.ledger.merkle import consistency_plan
from gateway.ledger.store import SqlLedger

ORIGIN = "gateway.local/ledger"
A, B, C = "000.00.05.H07", "000.01.05.H07", "000.02.05.H07"
T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)


def doc(n: int) -> str:
    return f"{A}|{A},2025/01/15,{n}/UBND"


class Site:
    """A gateway home: var dir, keys and the environment that points the CLI at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = Ed25519PrivateKey.generate()
        self.keys = root / "keys"
        self.env = {"GATEWAY_HOME": str(root / "var"), "GATEWAY_KEYS": str(self.keys)}
        self.db = root / "var" / "ledger.db"

    def write_keys(self, *, certificate: bool = True) -> None:
        folder = self.keys / "gateway"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "key.pem").write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        if certificate:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")])
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self.key.public_key())
                .serial_number(7)
                .not_valid_before(T0)
                .not_valid_after(T0 + timedelta(days=365))
                .sign(self.key, None)
            )
            (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def run(self, *args: str, url: str | None = None) -> Result:
        env = dict(self.env)
        if url:
            env["GATEWAY_DATABASE_URL"] = url
        return CliRunner().invoke(main, list(args), env=env)

    def populate(self, url: str | None = None, documents: int = 10) -> None:
        """Per document: submitted, delivered to B, delivered to C; one hour apart."""

        async def run() -> None:
            engine = create_engine(url or f"sqlite+aiosqlite:///{self.db}")
            clock = [T0]
            ledger = SqlLedger(
                engine, origin=ORIGIN, signer=NoteSigner(ORIGIN, self.key), clock=lambda: clock[0],
                checkpoint_seconds=10**6,
            )  # fmt: skip
            try:
                for n in range(documents):
                    await ledger.append(
                        [
                            Event(
                                EventType.SUBMITTED,
                                document=doc(n),
                                sender=A,
                                package_sha256="ef" * 32,
                            ),
                            Event(EventType.DELIVERED, document=doc(n), sender=A, recipient=B),
                            Event(EventType.DELIVERED, document=doc(n), sender=A, recipient=C),
                        ]
                    )
                    clock[0] += timedelta(hours=1)
            finally:
                await engine.dispose()

        asyncio.run(run())


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    s.write_keys()
    return s


@pytest.fixture
def ready(site: Site) -> Site:
    result = site.run("db", "upgrade")
    assert result.exit_code == 0, result.output
    site.populate()
    return site


def test_db_upgrade_creates_the_database_and_check_finds_no_drift(site: Site) -> None:
    result = site.run("db", "upgrade")
    assert (result.exit_code, result.output) == (0, f"OK database at revision {head_revision()}\n")
    assert site.db.exists()
    result = site.run("db", "check")
    assert result.exit_code == 0
    assert "models match the schema" in result.output
    assert json.loads(site.run("db", "check", "--json").output)["ok"] is True


def test_db_check_reports_drift_and_a_database_that_was_never_upgraded(site: Site) -> None:
    assert site.run("db", "check").exit_code == 2  # no database at all
    site.db.parent.mkdir(parents=True)
    sqlite3.connect(site.db).close()
    result = site.run("db", "check")
    assert result.exit_code == 1
    assert f"DRIFT database at revision none, head is {head_revision()}" in result.output
    site.run("db", "upgrade")
    with sqlite3.connect(site.db) as conn:
        conn.execute("ALTER TABLE ledger_entry ADD COLUMN stray TEXT")
    result = site.run("db", "check")
    assert result.exit_code == 1
    assert "DRIFT" in result.output and "stray" in result.output


def test_ledger_commands_say_what_to_run_when_the_database_or_key_is_missing(site: Site) -> None:
    result = site.run("ledger", "verify")
    assert result.exit_code == 2
    assert "gateway db upgrade" in result.output
    site.run("db", "upgrade")
    (site.keys / "gateway" / "key.pem").unlink()
    result = site.run("ledger", "checkpoint")
    assert result.exit_code == 2
    assert "key.pem does not exist" in result.output and "gateway keys init" in result.output


def test_checkpoint_signs_on_demand_and_old_ones_are_listed(ready: Site) -> None:
    out = ready.root / "cp.txt"
    result = ready.run("ledger", "checkpoint", "-o", str(out))
    assert result.exit_code == 0, result.output
    note = out.read_text()
    assert note.startswith(f"{ORIGIN}\n30\n")
    assert f"\n\n— {ORIGIN} " in note
    assert ready.run("ledger", "checkpoint", "--latest").output == note
    assert ready.run("ledger", "checkpoint", "--size", "30").output == note
    listed = ready.run("ledger", "checkpoint", "--list").output.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["3", "30"]
    assert ready.run("ledger", "checkpoint", "--size", "4").exit_code == 2


def test_verify_reports_the_entries_and_checkpoints_it_checked(ready: Site) -> None:
    result = ready.run("ledger", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "OK ledger verified: 30 entries, 1 checkpoints (signatures checked"
    )
    assert "verifying entries: 30/30" in result.stderr  # progress, not a terminal: plain lines
    key_id = NoteSigner(ORIGIN, ready.key).key_id
    assert f"(signatures checked with {ORIGIN}+{key_id:08x}), root " in result.stdout
    report = json.loads(ready.run("ledger", "verify", "--json").stdout)
    assert report == {
        "ok": True, "entries": 30, "checkpoints": 1, "signatures_checked": True,
        "bad_seq": None, "problem": None,
    }  # fmt: skip


@pytest.mark.parametrize("key_form", ["public-pem", "certificate", "vkey-inline", "vkey-file"])
def test_receipt_verifies_offline_after_the_database_is_deleted(ready: Site, key_form: str) -> None:
    receipt = ready.root / "receipt.json"
    result = ready.run(
        "ledger", "receipt", "--document", doc(4), "--recipient", B, "-o", str(receipt)
    )
    assert result.exit_code == 0, result.output
    vkey = NoteSigner(ORIGIN, ready.key).vkey
    pub = ready.root / "gateway.pub"
    if key_form == "public-pem":
        pub.write_bytes(
            ready.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        key = str(pub)
    elif key_form == "certificate":
        key = str(ready.keys / "gateway" / "cert.pem")
    elif key_form == "vkey-inline":
        key = vkey
    else:
        pub.write_text(vkey + "\n")
        key = str(pub)
    for path in ready.db.parent.glob("ledger.db*"):
        path.unlink()
    result = CliRunner().invoke(
        main, ["audit", "verify-receipt", str(receipt), "--key", key], env={}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"OK {receipt}: 2 entries included in {ORIGIN} at size 30")
    assert "submitted" in lines[1] and "delivered" in lines[2] and B in lines[2]


def test_a_changed_receipt_or_the_wrong_key_is_invalid(ready: Site) -> None:
    receipt = ready.root / "receipt.json"
    assert ready.run("ledger", "receipt", "--seq", "7", "-o", str(receipt)).exit_code == 0
    obj = json.loads(receipt.read_text())
    assert obj["entries"][0]["index"] == 7
    obj["entries"][0]["event"]["recipient"] = "000.09.05.H07"
    changed = ready.root / "changed.json"
    changed.write_text(json.dumps(obj))
    vkey = NoteSigner(ORIGIN, ready.key).vkey
    result = ready.run("audit", "verify-receipt", str(changed), "--key", vkey)
    assert result.exit_code == 1
    assert result.output.startswith(f"INVALID {changed}: entry 7: the readable 'event' differs")
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).vkey
    result = ready.run("audit", "verify-receipt", str(receipt), "--key", other, "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["valid"] is False
    assert ready.run("audit", "verify-receipt", str(receipt), "--key", "nonsense").exit_code == 2


def test_receipt_options_are_checked(ready: Site) -> None:
    assert ready.run("ledger", "receipt").exit_code == 2
    assert ready.run("ledger", "receipt", "--seq", "1", "--document", doc(1)).exit_code == 2
    assert ready.run("ledger", "receipt", "--seq", "1", "--recipient", B).exit_code == 2
    result = ready.run("ledger", "receipt", "--seq", "99")
    assert result.exit_code == 1 and "no ledger entry 99" in result.output


def test_consistency_between_two_checkpoints(ready: Site) -> None:
    old = ready.root / "old.txt"
    new = ready.root / "new.txt"
    ready.run("ledger", "checkpoint", "--size", "3", "-o", str(old))
    ready.run("ledger", "checkpoint", "-o", str(new))
    result = ready.run("audit", "consistency", str(old), str(new))
    hashes = len(consistency_plan(3, 30))
    assert (result.exit_code, result.output) == (
        0,
        f"OK consistent: {ORIGIN} grew from 3 to 30 entries (proof of {hashes} hashes)\n",
    )
    backwards = ready.run("audit", "consistency", str(new), str(old))
    assert backwards.exit_code == 2  # refused, not sorted silently
    assert "is newer than" in backwards.output and "older checkpoint first" in backwards.output
    # A checkpoint of a forked history, signed by the same key, is caught.
    forked = ready.root / "forked.txt"
    forked.write_text(NoteSigner(ORIGIN, ready.key).sign(f"{ORIGIN}\n3\n{'A' * 43}=\n"))
    result = ready.run("audit", "consistency", str(forked), str(new))
    assert result.exit_code == 1
    assert result.output.startswith("INCONSISTENT size 3 -> 30")
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).vkey
    result = ready.run("audit", "consistency", str(old), str(new), "--key", stranger)
    assert result.exit_code == 1 and "INVALID checkpoint" in result.output


def test_query_prints_table_json_and_csv_with_paging(ready: Site) -> None:
    result = ready.run("audit", "query", "--unit", B, "--limit", "4")
    assert result.exit_code == 0, result.output
    table = [
        line for line in result.output.splitlines() if line.strip() and "more entries" not in line
    ]
    assert len(table) == 4 and all(B in line and "delivered" in line for line in table)
    assert "more entries: repeat with --after 10" in result.output
    out = ready.root / "q.json"
    result = ready.run(
        "audit", "query", "--unit", B, "--limit", "4", "--all", "--format", "json", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(out.read_text())
    assert [e["seq"] for e in entries] == list(range(1, 30, 3))
    result = ready.run(
        "audit", "query", "--event", "submitted", "--since", "2025-01-15T10:00:00Z",
        "--until", "2025-01-15T13:00", "--format", "csv",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["seq"]) for r in rows] == [6, 9, 12]
    assert rows[0]["document"] == doc(2) and rows[0]["package_sha256"] == "ef" * 32
    result = ready.run("audit", "query", "--document", doc(9), "--format", "json")
    assert [e["recipient"] for e in json.loads(result.output)] == [None, B, C]
    result = ready.run("audit", "query", "--unit", "000.99.99.H07", "--format", "json")
    assert json.loads(result.output) == []
    assert ready.run("audit", "query", "--since", "yesterday").exit_code == 2


@pytest.fixture
def postgres_site(site: Site, database_url: str) -> Iterator[tuple[Site, str]]:
    url = asyncio.run(prepare_database(database_url))
    try:
        yield site, url
    finally:
        asyncio.run(discard_database(url))


def test_receipt_from_postgresql_verifies_after_the_schema_is_dropped(
    postgres_site: tuple[Site, str],
) -> None:
    site, url = postgres_site
    site.populate(url, documents=3)
    result = site.run("db", "check", url=url)
    assert result.exit_code == 0, result.output
    receipt = site.root / "receipt.json"
    assert (
        site.run("ledger", "receipt", "--document", doc(1), "-o", str(receipt), url=url).exit_code
        == 0
    )
    asyncio.run(discard_database(url))
    vkey = NoteSigner(ORIGIN, site.key).vkey
    result = site.run("audit", "verify-receipt", str(receipt), "--key", vkey)
    assert result.exit_code == 0, result.output
    assert "3 entries included" in result.output


def test_a_receipt_made_without_the_private_key_carries_the_certificate_chain(ready: Site) -> None:
    folder = ready.keys / "gateway"
    cert = (folder / "cert.pem").read_text()
    (folder / "chain.pem").write_text(cert)  # stands in for the issuing CA's certificate
    (folder / "key.pem").unlink()
    receipt = ready.root / "receipt.json"
    result = ready.run("ledger", "receipt", "--seq", "1", "-o", str(receipt))  # size 3 covers it
    assert result.exit_code == 0, result.output
    assert json.loads(receipt.read_text())["certificate_chain"] == cert + cert
    result = ready.run("audit", "verify-receipt", str(receipt), "--key", str(folder / "cert.pem"))
    assert result.exit_code == 0, result.output
    result = ready.run("ledger", "receipt", "--seq", "20")  # no checkpoint covers it, no key
    assert result.exit_code == 1 and "gateway ledger checkpoint" in result.output


def test_a_query_that_fails_leaves_no_output_file(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "entries.csv"
    result = site.run("audit", "query", "--format", "csv", "-o", str(out))
    assert result.exit_code == 2 and "no ledger database" in result.output
    assert not out.exists() and list(tmp_path.glob(".entries.csv*")) == []


def test_a_query_to_a_file_writes_it_whole(ready: Site, tmp_path: Path) -> None:
    out = tmp_path / "entries.csv"
    out.write_text("an earlier export\n")
    result = ready.run("audit", "query", "--format", "csv", "--all", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 30 and json.loads(rows[0]["details"]) == {}


def test_a_push_units_webhook_secret_is_kept_rotated_and_ledgered(tmp_path: Path) -> None:
    env = {"GATEWAY_HOME": str(tmp_path / "var")}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    first = runner.invoke(main, ["webhooks", "secret", "000.03.03.H07"], env=env)
    assert first.exit_code == 0, first.output
    secret = first.stdout.strip()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    again = runner.invoke(main, ["webhooks", "secret", "000.03.03.H07"], env=env)
    assert again.stdout.strip() == secret  # the same until rotated
    rotated = runner.invoke(
        main, ["webhooks", "secret", "000.03.03.H07", "--rotate", "--json"], env=env
    )
    answer = json.loads(rotated.stdout)
    assert (answer["unit"], answer["generation"]) == ("000.03.03.H07", 2)
    assert answer["secret"] != secret
    assert (tmp_path / "var" / "webhook-master.key").stat().st_mode & 0o777 == 0o600
    entries = runner.invoke(
        main, ["audit", "query", "--event", "operator", "--format", "json"], env=env
    )
    assert '"webhook_secret_rotate"' in entries.stdout
    unknown = runner.invoke(main, ["webhooks", "secret", "999.99.99.Z99"], env=env)
    assert unknown.exit_code == 2 and "not in the unit directory" in unknown.output
