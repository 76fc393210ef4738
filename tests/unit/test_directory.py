"""The unit directory: loading, every validation problem with its line, and the queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.directory import (
    SAMPLE_PATH,
    DeliveryMode,
    DirectoryInvalid,
    UnitStatus,
    load_directory,
    parse_directory,
)
from gateway.directory.sample import render_sample
from gateway.errors import GatewayError

HEADER = "code,name,parent_code,level,delivery,endpoint,status"
GOOD = [
    "000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active",
    "000.00.01.H07,Sở Nội vụ,000.00.00.H07,2,pull,,active",
    "000.01.01.H07,Ban Tôn giáo,000.00.01.H07,3,push,https://btg.example/inbox,active",
    "001.01.01.H07,Tổ tiếp nhận,000.01.01.H07,4,amqp,,suspended",
    "000.00.02.H07,UBND huyện An Lạc,000.00.00.H07,2,pull,,active",
]


def parse(*rows: str, header: str = HEADER) -> list[str]:
    """The problems of a directory text made of ``header`` and ``rows``; [] when valid."""
    try:
        parse_directory("\n".join([header, *rows]) + "\n")
    except DirectoryInvalid as e:
        return e.problems
    return []


def test_valid_directory_has_no_problems() -> None:
    assert parse(*GOOD) == []


def test_duplicate_code_is_reported_with_both_lines() -> None:
    problems = parse(*GOOD, "000.00.01.H07,Sở khác,000.00.00.H07,2,pull,,active")
    assert problems == ["line 7: duplicate code 000.00.01.H07 (first on line 3)"]


@pytest.mark.parametrize("code", ["00.00.01.H07", "000.00.01.h07", "000.00.01", "G12", ""])
def test_malformed_code_is_reported_with_its_line(code: str) -> None:
    problems = parse(*GOOD, f"{code},Đơn vị,000.00.00.H07,2,pull,,active")
    assert len(problems) == 1
    assert problems[0].startswith("line 7: malformed code")


def test_unknown_parent_is_reported_with_its_line() -> None:
    problems = parse(*GOOD, "000.00.09.H07,Sở mồ côi,000.00.77.H07,2,pull,,active")
    assert problems == ["line 7: 000.00.09.H07: unknown parent 000.00.77.H07"]


def test_cycle_is_reported_with_the_line_of_its_first_unit() -> None:
    problems = parse(
        *GOOD,
        "000.00.10.H07,Vòng A,000.00.11.H07,2,pull,,active",
        "000.00.11.H07,Vòng B,000.00.10.H07,2,pull,,active",
    )
    cycles = [p for p in problems if "cycle" in p]
    assert len(cycles) == 1
    assert cycles[0].startswith("line 7: 000.00.10.H07: parent cycle")
    assert "000.00.11.H07" in cycles[0]


def test_self_parent_is_a_cycle() -> None:
    problems = parse(*GOOD, "000.00.10.H07,Tự trỏ,000.00.10.H07,2,pull,,active")
    assert any(p.startswith("line 7:") and "cycle" in p for p in problems)


@pytest.mark.parametrize("mode", ["email", "PULL", "", "webhook"])
def test_bad_delivery_mode_is_reported_with_its_line(mode: str) -> None:
    problems = parse(*GOOD, f"000.00.09.H07,Sở,000.00.00.H07,2,{mode},,active")
    assert len(problems) == 1
    assert problems[0].startswith("line 7: 000.00.09.H07: bad delivery")


def test_push_without_endpoint_and_pull_with_endpoint_are_reported() -> None:
    problems = parse(
        *GOOD,
        "000.00.09.H07,Sở A,000.00.00.H07,2,push,,active",
        "000.00.10.H07,Sở B,000.00.00.H07,2,push,ftp://x.example/,active",
        "000.00.11.H07,Sở C,000.00.00.H07,2,pull,https://c.example/,active",
    )
    assert [p.split(":")[0] for p in problems] == ["line 7", "line 8", "line 9"]
    assert "push delivery needs" in problems[0] and "push delivery needs" in problems[1]
    assert "pull unit has no endpoint" in problems[2]


def test_bad_status_level_and_pin_are_reported() -> None:
    problems = parse(
        *[row + "," for row in GOOD],
        "000.00.09.H07,Sở A,000.00.00.H07,2,pull,,closed,",
        "000.00.10.H07,Sở B,000.00.00.H07,5,pull,,active,",
        "000.00.11.H07,Sở C,000.00.00.H07,2,pull,,active,abc",
        header=HEADER + ",cert_sha256",
    )
    assert problems[0].startswith("line 7: 000.00.09.H07: bad status")
    assert problems[1].startswith("line 8: 000.00.10.H07: bad level")
    assert problems[2].startswith("line 9: 000.00.11.H07: cert_sha256")


def test_level_not_below_parent_is_reported() -> None:
    problems = parse(*GOOD, "000.02.01.H07,Ban,000.00.01.H07,2,pull,,active")
    assert problems == ["line 7: 000.02.01.H07: level 2 is not below its parent's level 2"]


def test_every_problem_is_listed_in_line_order() -> None:
    problems = parse(
        *GOOD,
        "bad,Đơn vị,,1,pull,,active",
        "000.00.09.H07,Sở,000.00.00.H07,2,fax,,active",
        "000.00.01.H07,Trùng,000.00.00.H07,2,pull,,active",
        "000.00.12.H07,Thiếu cột",
    )
    assert [p.split(":")[0] for p in problems] == ["line 7", "line 8", "line 9", "line 10"]
    assert "fields, the header has 7" in problems[3]


def test_bad_header_is_reported_on_its_line() -> None:
    problems = parse(*GOOD, header="# comment\ncode,name,parent,level,delivery,endpoint,status")
    assert len(problems) == 1
    assert problems[0].startswith("line 2: bad header")
    assert "parent_code" in problems[0] and "'parent'" in problems[0]


def test_empty_file_has_no_header() -> None:
    with pytest.raises(DirectoryInvalid) as info:
        parse_directory("# only a comment\n\n")
    assert info.value.problems == ["line 1: no header row"]


def test_directory_invalid_is_a_gateway_error_with_the_catalogue_code() -> None:
    with pytest.raises(GatewayError) as info:
        parse_directory(HEADER + "\nbad,x,,1,pull,,active\n", "units.csv")
    assert info.value.code == "directory_invalid"
    assert "units.csv: 1 problem: line 2: malformed code" in info.value.message


def test_comments_blank_lines_and_bom_are_skipped_and_lines_still_counted() -> None:
    text = (
        "\ufeff# sample\n\n" + HEADER + "\n# note\n" + "\n".join(GOOD) + "\nbad,x,,1,pull,,active\n"
    )
    with pytest.raises(DirectoryInvalid) as info:
        parse_directory(text)
    assert info.value.problems[0].startswith("line 10: malformed code")


def test_unit_fields_are_read() -> None:
    directory = parse_directory("\n".join([HEADER + ",cert_sha256", *[r + "," for r in GOOD[:3]]]))
    unit = directory.get("000.01.01.H07")
    assert unit is not None
    assert unit.delivery is DeliveryMode.PUSH and unit.delivery == "push"
    assert unit.endpoint == "https://btg.example/inbox"
    assert unit.status is UnitStatus.ACTIVE and unit.active
    assert unit.parent_code == "000.00.01.H07" and unit.level == 3
    assert unit.cert_sha256 == ()
    top = directory.get("000.00.00.H07")
    assert top is not None and top.parent_code is None and top.endpoint is None


def test_pins_are_normalised_and_split() -> None:
    pin = "AB:" * 31 + "AB"
    other = "0" * 64
    directory = parse_directory(
        HEADER + ",cert_sha256\n" + f"000.00.00.H07,UBND,,1,pull,,active,{pin};{other}\n"
    )
    unit = directory.get("000.00.00.H07")
    assert unit is not None
    assert unit.cert_sha256 == ("ab" * 32, other)


def test_queries_children_descendants_level_and_membership() -> None:
    d = parse_directory("\n".join([HEADER, *GOOD]))
    assert len(d) == 5
    assert [u.code for u in d] == [row.split(",")[0] for row in GOOD]
    assert "000.00.01.H07" in d and "000.00.99.H07" not in d
    assert d.get("000.00.99.H07") is None
    assert [u.code for u in d.children("000.00.00.H07")] == ["000.00.01.H07", "000.00.02.H07"]
    assert [u.code for u in d.descendants("000.00.00.H07")] == [
        "000.00.01.H07",
        "000.01.01.H07",
        "001.01.01.H07",
        "000.00.02.H07",
    ]
    assert d.children("000.00.99.H07") == () and d.descendants("000.00.99.H07") == ()
    assert [u.code for u in d.at_level(2)] == ["000.00.01.H07", "000.00.02.H07"]
    assert [u.code for u in d.ancestors("001.01.01.H07")] == [
        "000.01.01.H07",
        "000.00.01.H07",
        "000.00.00.H07",
    ]
    assert [u.code for u in d.roots()] == ["000.00.00.H07"]
    suspended = d.get("001.01.01.H07")
    assert suspended is not None and not suspended.active


def test_sample_has_809_units_in_the_national_format() -> None:
    d = load_directory()
    assert len(d) == 809
    assert [u.code for u in d.at_level(1)] == ["000.00.00.H07"]
    assert all(u.code.endswith(".H07") for u in d)
    assert len(d.descendants("000.00.00.H07")) == 808
    modes = {u.delivery for u in d}
    assert modes == {DeliveryMode.PULL, DeliveryMode.PUSH, DeliveryMode.AMQP}
    assert sum(u.delivery is DeliveryMode.PULL for u in d) > len(d) // 2
    assert all(u.endpoint and u.endpoint.startswith("https://") for u in d if u.delivery == "push")
    assert 0 < sum(not u.active for u in d) < 20
    names = [u.name for u in d]
    assert "Sở Nội vụ" in names and "Sở Tài chính" in names
    assert any(n.startswith("Ủy ban nhân dân xã ") for n in names)
    assert any(n.startswith("Ủy ban nhân dân phường ") for n in names)
    assert any(n.startswith("Ủy ban nhân dân thị trấn ") for n in names)
    assert all(u.parent_code is None or u.level == 1 + len(d.ancestors(u.code)) for u in d)


def test_sample_file_is_labelled_and_matches_its_generator() -> None:
    text = SAMPLE_PATH.read_text(encoding="utf-8")
    assert text.startswith("# SAMPLE DATA")
    assert text == render_sample()


def test_sample_is_cached() -> None:
    assert load_directory() is load_directory()
    assert load_directory(SAMPLE_PATH) is load_directory()


def test_file_changes_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("\n".join([HEADER, *GOOD[:2]]) + "\n", encoding="utf-8")
    assert len(load_directory(path)) == 2
    path.write_text("\n".join([HEADER, *GOOD]) + "\n", encoding="utf-8")
    assert len(load_directory(path)) == 5


def test_missing_and_non_utf8_files_are_directory_invalid(tmp_path: Path) -> None:
    with pytest.raises(GatewayError) as info:
        load_directory(tmp_path / "absent.csv")
    assert info.value.code == "directory_invalid"
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n000.00.00.H07,Tỉnh Đồng Nai,,1,pull,,active\n").encode("utf-16"))
    with pytest.raises(DirectoryInvalid) as bad:
        load_directory(path)
    assert "not UTF-8" in bad.value.problems[0]
