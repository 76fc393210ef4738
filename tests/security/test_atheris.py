"""A bounded run of the coverage-guided fuzzer (bench/fuzz_envelope.py, atheris): 2,000 inputs
grown from a signed letter and a status packet must each end in a package or a catalogue
code. Longer runs are for the command line (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "fuzz_envelope.py"


def test_a_bounded_fuzzing_run_finds_no_crash(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "-atheris_runs=2000", f"-artifact_prefix={tmp_path}/"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    crashes = list(tmp_path.glob("crash-*"))
    found = run.stderr[run.stderr.find("Uncaught Python exception") :][:4000]
    assert run.returncode == 0 and not crashes, found
