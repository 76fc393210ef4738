"""`gateway demo` runs start to finish on a fresh folder and shows what it promises."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.config import Settings
from gateway.demo import run_demo
from gateway.demo_federated import run_federated_demo
from gateway.ledger.identity import LedgerMismatch
from gateway.service.runtime import start_runtime


async def test_demo_exchanges_letters_refuses_what_it_must_and_verifies_the_ledger(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    summary = await run_demo(tmp_path, say=lines.append)
    counts = summary["counts"]
    assert counts["submitted"] == 6
    assert counts["delivered"] == 18  # three recipients per letter, all fetched and acknowledged
    assert counts["status"] >= 6 * 3 * 2
    assert summary["rejections"] == {
        "status_out_of_order": 1,
        "status_not_recipient": 1,
        "recall_not_sender": 1,
        "signature_invalid": 1,
        "unknown_recipient": 1,
    }
    assert summary["ledger_entries"] == sum(counts.values())
    assert summary["receipt_entries"] > 0
    assert any(line.startswith("  ledger: ") and "OK" in line for line in lines)
    assert "Summary" in lines


async def test_a_kept_demo_ledger_verifies_from_its_database_alone(tmp_path: Path) -> None:
    """The ledger knows its origin and key: verify needs only the database file, from any
    folder; a configuration naming another origin is a mismatch (exit 2), never CORRUPT; a
    gateway will not start on it with another origin."""
    await run_demo(tmp_path, say=lambda _: None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for db in (tmp_path / "var").glob("ledger.db*"):
        shutil.copy(db, elsewhere / db.name)
    env = {"GATEWAY_HOME": str(elsewhere), "GATEWAY_KEYS": str(tmp_path / "no-keys")}

    def verify(**extra: str) -> Result:
        return CliRunner().invoke(main, ["ledger", "verify"], env=env | extra)

    done = await asyncio.to_thread(verify)
    assert done.exit_code == 0, done.output
    assert "OK ledger verified" in done.output
    assert "signatures checked with demo.gateway.local/ledger" in done.output
    other = await asyncio.to_thread(verify, GATEWAY_LEDGER_ORIGIN="gateway.local/ledger")
    assert other.exit_code == 2 and "CORRUPT" not in other.output
    assert "configuration mismatch" in other.output and "demo.gateway.local/ledger" in other.output
    with pytest.raises(LedgerMismatch):
        await start_runtime(Settings(home=tmp_path / "var"))


async def test_the_federated_demo_relays_between_two_provinces(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = await run_federated_demo(tmp_path, say=lines.append)
    # every copy for the other province handed to its link once: two letters, the recall (13)
    # and the three letters sent while H08 was stopped
    assert summary["relayed"] == 6
    verified = [line for line in lines if "receipt verified offline" in line]
    assert [line.split(":")[0].strip() for line in verified] == [
        "gateway.h07/ledger",
        "gateway.h08/ledger",
    ]
    assert any("from link h07" in line for line in lines)
    assert any("to link h08" in line for line in lines)
