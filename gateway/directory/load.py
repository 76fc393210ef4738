"""Reading and checking a unit directory file (CSV, UTF-8, one header row).

Columns: ``code,name,parent_code,level,delivery,endpoint,status`` and optionally
``cert_sha256`` (pinned signer certificate fingerprints, several separated by ``;``). Lines
whose first character is ``#`` are comments, blank lines are skipped. Every problem is
reported with its line number, all of them at once.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path
from typing import TypeVar

from gateway.directory.model import DeliveryMode, Directory, Unit, UnitStatus
from gateway.errors import ConfigError

_E = TypeVar("_E", DeliveryMode, UnitStatus)

SAMPLE_PATH = Path(__file__).parent / "data" / "sample-province.csv"

REQUIRED_COLUMNS = ("code", "name", "parent_code", "level", "delivery", "endpoint", "status")
OPTIONAL_COLUMNS = ("cert_sha256",)

# The national OrganId format NNN.NN.NN.Lnn: groups of levels 4, 3 and 2, then level 1.
_CODE = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")


class DirectoryInvalid(ConfigError):
    """The directory file has problems; ``problems`` lists each with its line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:10]) + ("; …" if len(problems) > 10 else "")
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} {noun}: {shown}", code="directory_invalid")


def normalise_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits (colons and case ignored)."""
    return text.replace(":", "").strip().lower()


class _Rows:
    """Collects units and problems while the file is read."""

    def __init__(self) -> None:
        self.units: list[Unit] = []
        self.lines: dict[str, int] = {}  # code -> line of its first occurrence
        self.problems: list[tuple[int, str]] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def row(self, line: int, values: dict[str, str]) -> None:
        before = len(self.problems)
        code = values["code"]
        if not _CODE.fullmatch(code):
            self.problem(line, f"malformed code {code!r} (expected NNN.NN.NN.Lnn)")
        elif code in self.lines:
            self.problem(line, f"duplicate code {code} (first on line {self.lines[code]})")
        name = values["name"]
        if not name:
            self.problem(line, f"{code}: empty name")
        parent = values["parent_code"] or None
        if parent is not None and not _CODE.fullmatch(parent):
            self.problem(line, f"{code}: malformed parent_code {parent!r}")
        level = _level(values["level"])
        if level is None:
            self.problem(line, f"{code}: bad level {values['level']!r} (expected 1 to 4)")
        delivery = _choice(DeliveryMode, values["delivery"])
        if delivery is None:
            self.problem(
                line, f"{code}: bad delivery {values['delivery']!r} (expected pull, push or amqp)"
            )
        endpoint = values["endpoint"] or None
        if delivery is DeliveryMode.PUSH and (endpoint is None or not _URL.fullmatch(endpoint)):
            self.problem(
                line, f"{code}: push delivery needs an http(s) endpoint URL, got {endpoint!r}"
            )
        if delivery is DeliveryMode.PULL and endpoint is not None:
            self.problem(line, f"{code}: a pull unit has no endpoint, got {endpoint!r}")
        status = _choice(UnitStatus, values["status"])
        if status is None:
            self.problem(
                line, f"{code}: bad status {values['status']!r} (expected active or suspended)"
            )
        pins = tuple(
            normalise_fingerprint(p) for p in values.get("cert_sha256", "").split(";") if p.strip()
        )
        for pin in pins:
            if not _SHA256.fullmatch(pin):
                self.problem(line, f"{code}: cert_sha256 {pin!r} is not a SHA-256 fingerprint")
        if code not in self.lines:
            self.lines[code] = line
        if len(self.problems) == before:
            assert level is not None and delivery is not None and status is not None
            self.units.append(Unit(code, name, parent, level, delivery, endpoint, status, pins))

    def check_hierarchy(self) -> None:
        by_code = {u.code: u for u in self.units}
        for u in self.units:
            if u.parent_code is None:
                continue
            parent = by_code.get(u.parent_code)
            if parent is None:
                if u.parent_code not in self.lines:  # a bad parent row is reported already
                    self.problem(self.lines[u.code], f"{u.code}: unknown parent {u.parent_code}")
            elif parent.level >= u.level:
                self.problem(
                    self.lines[u.code],
                    f"{u.code}: level {u.level} is not below its parent's level {parent.level}",
                )
        self._check_cycles(by_code)

    def _check_cycles(self, by_code: dict[str, Unit]) -> None:
        done: set[str] = set()
        for start in self.units:
            path: list[str] = []
            on_path: set[str] = set()
            code: str | None = start.code
            while code is not None and code not in done and code in by_code:
                if code in on_path:
                    cycle = path[path.index(code) :]
                    first = min(cycle, key=lambda c: self.lines[c])
                    self.problem(
                        self.lines[first],
                        f"{first}: parent cycle {' -> '.join([*cycle, code])}",
                    )
                    break
                path.append(code)
                on_path.add(code)
                code = by_code[code].parent_code
            done.update(path)


def _level(text: str) -> int | None:
    return int(text) if text in ("1", "2", "3", "4") else None


def _choice(kind: type[_E], text: str) -> _E | None:
    try:
        return kind(text)
    except ValueError:
        return None


def parse_directory(text: str, source: str = "<directory>") -> Directory:
    """Check and read the text of a directory file; raises DirectoryInvalid with every problem."""
    rows = _Rows()
    columns: list[str] | None = None
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as e:
            rows.problem(number, f"not a CSV row ({e})")
            continue
        fields = [f.strip() for f in fields]
        if columns is None:
            columns = fields
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if missing or unknown or len(set(columns)) != len(columns):
                rows.problem(
                    number,
                    f"bad header {','.join(columns)!r}: missing {missing}, unknown {unknown}; "
                    f"expected {','.join(REQUIRED_COLUMNS)}[,cert_sha256]",
                )
                break
            continue
        if len(fields) != len(columns):
            rows.problem(number, f"{len(fields)} fields, the header has {len(columns)}")
            continue
        rows.row(number, dict(zip(columns, fields, strict=True)))
    if columns is None and not rows.problems:
        rows.problem(1, "no header row")
    rows.check_hierarchy()  # over the rows that were fine on their own
    if rows.problems:
        rows.problems.sort(key=lambda p: p[0])
        raise DirectoryInvalid(source, [f"line {n}: {m}" for n, m in rows.problems])
    return Directory(rows.units)


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, size: int) -> Directory:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DirectoryInvalid(str(path), [f"byte {e.start}: not UTF-8"]) from e
    return parse_directory(text, str(path))


def load_directory(path: Path | None = None) -> Directory:
    """The directory in ``path``, or the bundled sample province when ``path`` is None.

    Loaded directories are cached until the file changes (its size or modification time)."""
    path = (SAMPLE_PATH if path is None else Path(path)).resolve()
    try:
        stat = path.stat()
    except OSError as e:
        raise ConfigError(
            f"cannot read the unit directory {path}: {e.strerror}", code="directory_invalid"
        ) from e
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)
