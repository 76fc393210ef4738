"""Changing a directory file one unit at a time (add, update, suspend, resume).

The unit's line is replaced or appended; comments and every other line stay as they were. The
new text is checked by the same rules as loading (the whole file: codes, parents, levels,
modes, endpoints, pins) and replaces the file atomically only when it passes, so a running
gateway never reads half a change. A lock file beside the directory orders writers from
several processes.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.directory.load import DirectoryInvalid, parse_directory
from gateway.directory.model import Unit
from gateway.errors import GatewayError

# The fields a change may set; ``code`` names the unit and never changes.
FIELDS = ("name", "parent_code", "level", "delivery", "endpoint", "status", "cert_sha256")


@dataclass(frozen=True)
class UnitChange:
    """A change made: the unit before (None when added) and after, and the fields that
    changed with their new values."""

    before: Unit | None
    after: Unit
    fields: dict[str, str]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fields(line: str) -> list[str]:
    return [f.strip() for f in next(csv.reader([line]))]


def _line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def change_unit(
    path: Path, code: str, values: Mapping[str, str], *, create: bool = False
) -> UnitChange:
    """Set ``values`` (fields of FIELDS, as the file writes them) on unit ``code``, or add it
    (``create``). Raises GatewayError: ``not_found``, ``unit_exists``, or ``unit_invalid``
    with every problem of the resulting file."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise GatewayError("unit_invalid", f"unknown unit fields: {', '.join(unknown)}")
    path = Path(path)
    with _locked(path):
        text = path.read_text(encoding="utf-8")
        before = parse_directory(text, str(path))
        lines = text.removeprefix("\ufeff").splitlines()
        header = next(i for i, line in enumerate(lines) if line.strip() and line[0] != "#")
        columns = _fields(lines[header])
        if values.get("cert_sha256") and "cert_sha256" not in columns:
            columns.append("cert_sha256")  # a pin in a file without pins: add the column
            lines = [
                line + "," if i > header and line.strip() and line[0] != "#" else line
                for i, line in enumerate(lines)
            ]
            lines[header] = _line(columns)
        at = next(
            (
                i
                for i, line in enumerate(lines)
                if i > header and line.strip() and line[0] != "#" and _fields(line)[0] == code
            ),
            None,
        )
        old = before.get(code)
        if create and old is not None:
            raise GatewayError("unit_exists", f"{code} is already in the directory")
        if not create and old is None:
            raise GatewayError("not_found", f"{code} is not in the directory")
        row = dict.fromkeys(columns, "") | {"code": code}
        if at is not None:
            row |= dict(zip(columns, _fields(lines[at]), strict=False))
        changed = {k: str(v) for k, v in values.items() if row.get(k) != str(v)}
        row |= changed
        new_line = _line([row[c] for c in columns])
        if at is None:
            lines.append(new_line)
        else:
            lines[at] = new_line
        new_text = "\n".join(lines) + "\n"
        try:
            after = parse_directory(new_text, str(path))
        except DirectoryInvalid as e:
            raise GatewayError(
                "unit_invalid", f"the change would make the directory invalid: {e.message}"
            ) from e
        unit = after.get(code)
        assert unit is not None
        if changed:
            _replace(path, new_text)
        return UnitChange(old, unit, changed)


def _replace(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it over, so readers see old or new whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
