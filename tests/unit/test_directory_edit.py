"""Changing a directory file one unit at a time (gateway.directory.edit) and ``gateway units
add|update|suspend|resume`` on the file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.directory import load_directory
from gateway.directory.edit import change_unit
from gateway.errors import GatewayError
from gateway.ledger import EventType, Query, open_ledger
from gateway.service.reload import unit_changes

TEXT = """\
# the province's units
code,name,parent_code,level,delivery,endpoint,status
000.00.00.H07,Ủy ban nhân dân tỉnh,,1,pull,,active

# departments
000.00.05.H07,"Sở Nội vụ, tỉnh",000.00.00.H07,2,pull,,active
"""
NEW = "000.00.90.H07"
PIN = "ab" * 32


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "units.csv"
    file.write_text(TEXT, encoding="utf-8")
    return file


def test_add_appends_one_line_and_keeps_the_rest_as_it_was(path: Path) -> None:
    change = change_unit(
        path,
        NEW,
        {"name": "Sở Du lịch", "parent_code": "000.00.00.H07", "level": "2", "delivery": "pull",
         "status": "active"},
        create=True,
    )  # fmt: skip
    assert change.before is None and change.after.code == NEW and change.after.level == 2
    assert (
        path.read_text(encoding="utf-8")
        == TEXT + f"{NEW},Sở Du lịch,000.00.00.H07,2,pull,,active\n"
    )
    assert NEW in load_directory(path)


def test_update_changes_only_the_fields_given(path: Path) -> None:
    change = change_unit(
        path, "000.00.05.H07", {"delivery": "push", "endpoint": "https://snv.example/in"}
    )
    assert change.fields == {"delivery": "push", "endpoint": "https://snv.example/in"}
    assert change.before is not None and change.before.name == "Sở Nội vụ, tỉnh"
    assert change.after.name == "Sở Nội vụ, tỉnh" and change.after.endpoint is not None
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:5] == TEXT.splitlines()[:5]  # comments and blank lines stay
    assert (
        lines[5]
        == '000.00.05.H07,"Sở Nội vụ, tỉnh",000.00.00.H07,2,push,https://snv.example/in,active'
    )


def test_a_change_that_sets_nothing_new_does_not_touch_the_file(path: Path) -> None:
    before = path.stat().st_mtime_ns
    change = change_unit(path, "000.00.05.H07", {"status": "active"})
    assert change.fields == {} and path.stat().st_mtime_ns == before


def test_a_pin_in_a_file_without_pins_adds_the_column(path: Path) -> None:
    change_unit(path, "000.00.05.H07", {"cert_sha256": PIN})
    text = path.read_text(encoding="utf-8")
    assert "code,name,parent_code,level,delivery,endpoint,status,cert_sha256" in text
    directory = load_directory(path)
    assert directory.get("000.00.05.H07").cert_sha256 == (PIN,)  # type: ignore[union-attr]
    assert directory.get("000.00.00.H07").cert_sha256 == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "values", "create", "error", "says"),
    [
        (NEW, {"name": "x", "parent_code": "000.00.77.H07", "level": "2", "delivery": "pull",
               "status": "active"}, True, "unit_invalid", "unknown parent"),
        (NEW, {"name": "x", "parent_code": "000.00.00.H07", "level": "2", "delivery": "push",
               "status": "active"}, True, "unit_invalid", "push delivery needs"),
        ("000.00.05.H07", {"name": "x", "level": "2", "delivery": "pull", "status": "active"},
         True, "unit_exists", "already"),
        (NEW, {"status": "suspended"}, False, "not_found", "not in the directory"),
        ("000.00.05.H07", {"colour": "red"}, False, "unit_invalid", "unknown unit fields"),
        ("000.00.05.H07", {"level": "1"}, False, "unit_invalid", "not below its parent"),
    ],
)  # fmt: skip
def test_a_refused_change_changes_nothing(
    path: Path, code: str, values: dict[str, str], create: bool, error: str, says: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        change_unit(path, code, values, create=create)
    assert caught.value.code == error and says in caught.value.message
    assert path.read_text(encoding="utf-8") == TEXT
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".units")] == []


def test_unit_changes_name_what_was_added_removed_and_changed(path: Path) -> None:
    old = load_directory(path)
    change_unit(path, "000.00.05.H07", {"status": "suspended"})
    change_unit(
        path,
        NEW,
        {"name": "x", "parent_code": "000.00.00.H07", "level": "2", "delivery": "pull",
         "status": "active"},
        create=True,
    )  # fmt: skip
    assert unit_changes(old, load_directory(path)) == ((NEW,), (), ("000.00.05.H07",))


def cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        "GATEWAY_DIRECTORY": str(tmp_path / "units.csv"),
        "GATEWAY_HOME": str(tmp_path / "var"),
        "GATEWAY_URL": "",
        "GATEWAY_DATABASE_URL": "",
    }
    result = CliRunner().invoke(main, ["units", *args], env=env)
    return result.exit_code, result.output


def test_units_commands_change_the_file_and_say_when_there_is_no_ledger(
    tmp_path: Path, path: Path
) -> None:
    code, out = cli(
        tmp_path, "add", NEW, "--name", "Sở Du lịch", "--parent", "000.00.00.H07", "--level", "2",
        "--delivery", "pull",
    )  # fmt: skip
    assert code == 0, out
    assert f"{NEW}: add (" in out and "this action is not ledgered" in out
    assert cli(tmp_path, "suspend", NEW)[0] == 0
    assert load_directory(path).get(NEW).active is False  # type: ignore[union-attr]
    code, out = cli(tmp_path, "update", NEW, "--name", "Sở Văn hóa", "--json")
    assert code == 0 and '"name": "Sở Văn hóa"' in out
    assert cli(tmp_path, "resume", NEW)[0] == 0
    code, out = cli(tmp_path, "add", NEW, "--name", "x", "--level", "2", "--delivery", "pull")
    assert code == 1 and "INVALID unit_exists" in out
    assert cli(tmp_path, "update", NEW)[0] == 2  # nothing to change


def test_units_commands_ledger_the_change_when_there_is_a_database(
    tmp_path: Path, path: Path
) -> None:

    settings = Settings(home=tmp_path / "var")

    async def make() -> None:
        ledger = open_ledger(settings)
        await upgrade(ledger.engine)
        await ledger.engine.dispose()

    asyncio.run(make())
    assert cli(tmp_path, "suspend", "000.00.05.H07")[0] == 0

    async def read() -> list[dict[str, object]]:
        ledger = open_ledger(settings)
        page = await ledger.query(Query(events=(EventType.OPERATOR,)))
        await ledger.engine.dispose()
        return [dict(e.event.details) | {"code": e.event.code} for e in page.entries]

    (event,) = asyncio.run(read())
    assert event["code"] == "unit_suspend" and event["unit"] == "000.00.05.H07"
    assert event["fields"] == {"status": "suspended"} and str(event["actor"]).startswith("cli:")
    assert json.dumps(event)  # plain JSON, as auditors export it
