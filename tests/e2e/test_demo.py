"""`gateway demo` runs start to finish on a fresh folder and shows what it promises."""

from __future__ import annotations

from pathlib import Path

from gateway.demo import run_demo


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
