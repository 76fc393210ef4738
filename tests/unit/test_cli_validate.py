"""`gateway validate`: output lines, JSON, exit codes, standard input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from samples import sample_document, with_dummy_signature

from gateway.cli import main
from gateway.envelope import build_package

INTEROP = Path(__file__).parents[1] / "data" / "interop"


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "letter.edxml"
    path.write_bytes(with_dummy_signature(build_package(sample_document())))
    return path


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def test_valid_file_prints_ok_line_and_exits_0(valid_file: Path) -> None:
    code, out = run("validate", str(valid_file))
    assert code == 0
    assert out == (
        f"OK {valid_file} kind=document document_id=000.00.05.H07,2026/11/26,125/SNV-VP "
        "from=000.00.05.H07 to=2 attachments=1 warnings=0\n"
    )


def test_any_invalid_file_exits_1_with_code_and_message(valid_file: Path) -> None:
    code, out = run("validate", str(valid_file), str(INTEROP / "sdk-edoc.edxml"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("OK ")
    assert lines[1].startswith(f"INVALID {INTEROP / 'sdk-edoc.edxml'} xml_malformed: ")


def test_compat_profile_counts_warnings() -> None:
    code, out = run("validate", "--profile", "compat", str(INTEROP / "upload-1da394ba.edxml"))
    assert code == 0
    assert out.strip().endswith("to=1 attachments=3 warnings=5")


def test_verbose_lists_each_warning() -> None:
    code, out = run("validate", "-v", "--profile", "compat", str(INTEROP / "upload-1da394ba.edxml"))
    assert code == 0
    assert "  warning signature_absent: the package is not signed" in out.splitlines()


def test_json_output_has_every_field(valid_file: Path) -> None:
    code, out = run("validate", "--json", str(valid_file), str(INTEROP / "vxp-2025-874e0f18.edxml"))
    assert code == 1
    ok, bad = json.loads(out)
    assert ok == {
        "file": str(valid_file),
        "valid": True,
        "kind": "document",
        "code": None,
        "message": None,
        "document_id": "000.00.05.H07,2026/11/26,125/SNV-VP",
        "from": "000.00.05.H07",
        "to": ["000.00.06.H07", "000.01.20.H07"],
        "attachments": 1,
        "warnings": [],
    }
    assert bad["valid"] is False and bad["code"] == "signature_missing"
    assert bad["message"]


def test_dash_reads_standard_input(valid_file: Path) -> None:
    code, out = run("validate", "-", stdin=valid_file.read_bytes())
    assert code == 0 and out.startswith("OK - kind=document")


def test_missing_file_is_a_usage_error() -> None:
    code, out = run("validate", "/nonexistent/file.edxml")
    assert code == 2
    assert "does not exist" in out


def test_bad_option_is_a_usage_error(valid_file: Path) -> None:
    assert run("validate", "--profile", "lenient", str(valid_file))[0] == 2
    assert run("validate")[0] == 2


def test_bad_setting_is_an_environment_error(
    valid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ENVELOPE_MAX_BYTES", "lots")
    code, out = run("validate", str(valid_file))
    assert code == 2
    assert "GATEWAY_ENVELOPE_MAX_BYTES" in out


def test_help_explains_every_option() -> None:
    code, out = run("validate", "--help")
    assert code == 0
    for option in ("--profile", "--json", "--verbose", "strict", "compat", "Exit 0"):
        assert option in out


def test_installed_command_runs_as_a_module(valid_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(valid_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK ")
