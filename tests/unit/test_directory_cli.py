"""``gateway units list|show|check`` on the sample and on broken files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.directory import SAMPLE_PATH


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_list_prints_every_sample_unit() -> None:
    code, out = run("units", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 809
    assert lines[0].startswith("000.00.00.H07  L1  pull  Ủy ban nhân dân tỉnh")


def test_list_children_and_descendants_of_a_parent() -> None:
    code, out = run("units", "list", "--parent", "000.00.08.H07", "--json")
    assert code == 0
    children = json.loads(out)
    assert all(u["parent_code"] == "000.00.08.H07" for u in children)
    assert "Chi cục Kiểm lâm" in [u["name"] for u in children]
    _, out = run("units", "list", "--parent", "000.00.08.H07", "--recursive", "--json")
    assert len(json.loads(out)) > len(children)


def test_list_unknown_parent_is_a_usage_error() -> None:
    code, out = run("units", "list", "--parent", "999.99.99.H07")
    assert code == 2
    assert "999.99.99.H07 is not in the directory" in out


def test_show_prints_a_unit_and_its_parents() -> None:
    code, out = run("units", "show", "001.01.08.H07")
    assert code == 0
    assert "Hạt Kiểm lâm" in out
    assert "parent:      000.01.08.H07  Chi cục Kiểm lâm" in out
    code, out = run("units", "show", "--json", "000.00.30.H07")
    shown = json.loads(out)
    assert shown["level"] == 2 and shown["children"] > 20
    assert shown["parents"] == [{"code": "000.00.00.H07", "name": "Ủy ban nhân dân tỉnh Minh Sơn"}]


def test_show_unknown_code_exits_1() -> None:
    code, _ = run("units", "show", "999.99.99.H07")
    assert code == 1


def test_check_sample_is_ok() -> None:
    code, out = run("units", "check", str(SAMPLE_PATH))
    assert code == 0
    assert out.startswith(f"OK {SAMPLE_PATH}: 809 units")


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(
        "code,name,parent_code,level,delivery,endpoint,status\n"
        "000.00.00.H07,UBND,,1,pull,,active\n"
        "000.00.01.H07,Sở,000.00.55.H07,2,pull,,active\n"
        "000.00.00.H07,Trùng,,1,carrier,,active\n",
        encoding="utf-8",
    )
    code, out = run("units", "check", str(path))
    assert code == 1
    assert f"{path}: line 4: duplicate code 000.00.00.H07 (first on line 2)" in out
    assert f"{path}: line 4: 000.00.00.H07: bad delivery 'carrier'" in out
    assert f"{path}: line 3: 000.00.01.H07: unknown parent 000.00.55.H07" in out
    assert out.splitlines()[-1] == f"INVALID {path}: 3 problem(s)"


def test_list_with_an_invalid_directory_is_an_environment_error(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("code,name\n", encoding="utf-8")
    code, out = run("units", "list", "--directory", str(path))
    assert code == 2
    assert "bad header" in out
