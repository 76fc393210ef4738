"""The watched-folder adapter: an agency system that exchanges files.

The system drops ``.edxml`` files (letters or status packets) into ``in/``; each is signed with
the unit's key when it is unsigned and a key folder is given, submitted, and moved to
``in/sent/``, or to ``in/rejected/`` with ``<name>.error.json`` (code, message, where) beside
it. Every copy the gateway delivers is written to ``out/<delivery id>.edxml``: to a temporary
name, fsynced, then renamed, so the system never sees half a file, and acknowledged only after.

Crash safety, at every step: a file signed here is kept in ``in/.signed/`` until it is
answered, so a restart sends the very same bytes and the gateway answers them with its first
answer (never a second letter); a copy is recorded in ``out/.pending/`` before its rename and
forgotten after its acknowledgement, so a copy offered again after a crash is not written again
(the system may have taken the first one already).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from adapters.base import Outgoing
from gateway.client import Fetched, sign_if_unsigned
from gateway.errors import ConfigError, PackageRejected
from gateway.trust import load_unit_signer

SUFFIX = ".edxml"
_ORGAN_ID = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class FolderSettings:
    unit: str  # the unit whose system this is
    inbox: Path  # in/: what the system sends
    outbox: Path  # out/: what the system receives
    keys: Path | None = None  # key folder (gateway keys init layout) to sign unsigned files


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all, on disk before this returns."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or with a number before the suffix when that is taken."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    n = 1
    while target.exists():
        target = folder / f"{stem}.{n}{suffix}"
        n += 1
    return target


class FolderAdapter:
    """An agency system that exchanges files through two folders."""

    name: ClassVar[str] = "folder"

    def __init__(self, settings: FolderSettings) -> None:
        self.settings = settings
        self.unit = settings.unit
        self.inbox = settings.inbox
        self.outbox = settings.outbox
        self.sent_dir = self.inbox / "sent"
        self.rejected_dir = self.inbox / "rejected"
        self.signed_dir = self.inbox / ".signed"
        self.pending_dir = self.outbox / ".pending"
        for folder in (self.sent_dir, self.rejected_dir, self.signed_dir, self.pending_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if settings.keys is not None:
            load_unit_signer(settings.keys, self.unit)  # ConfigError now if its key is missing

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Settings: ``unit`` (OrganId), ``in`` and ``out`` (folders, made if missing),
        ``keys`` (optional key folder holding the unit's key)."""
        problems = []
        unit = str(settings.get("unit") or "")
        if not _ORGAN_ID.fullmatch(unit):
            problems.append(f"unit {unit!r} is not an OrganId (NNN.NN.NN.Lnn)")
        folders = {}
        for key in ("in", "out"):
            value = settings.get(key)
            if not value:
                problems.append(f"the {key} folder is required")
                continue
            folder = Path(value).resolve()
            if folder.exists() and not folder.is_dir():
                problems.append(f"{key} folder {folder} is not a folder")
            folders[key] = folder
        if len(folders) == 2 and (
            folders["in"] == folders["out"]
            or folders["in"] in folders["out"].parents
            or folders["out"] in folders["in"].parents
        ):
            problems.append("the in and out folders must be apart (neither inside the other)")
        keys = settings.get("keys")
        if keys is not None and not Path(keys).is_dir():
            problems.append(f"key folder {keys} is not a folder")
        if problems:
            raise ConfigError("folder adapter: " + "; ".join(problems))
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return cls(
            FolderSettings(
                unit, folders["in"], folders["out"], None if keys is None else Path(keys)
            )
        )

    # -- what the system sends -------------------------------------------------------------

    def outgoing(self) -> Iterator[Outgoing]:
        for stale in self.signed_dir.glob(f"*{SUFFIX}"):
            if not (self.inbox / stale.name).exists():  # answered before a crash
                stale.unlink()
        files = sorted(
            (p for p in self.inbox.glob(f"*{SUFFIX}") if p.is_file()),
            key=lambda p: (p.stat().st_mtime_ns, p.name),
        )
        for path in files:
            yield Outgoing(path.name, self._ready(path))

    def _ready(self, path: Path) -> bytes:
        """The bytes to submit: signed here once (and kept) when unsigned and a key is set."""
        staged = self.signed_dir / path.name
        if staged.exists():
            return staged.read_bytes()
        data = path.read_bytes()
        if self.settings.keys is None:
            return data
        try:
            signed, here = sign_if_unsigned(data, self.settings.keys)
        except (PackageRejected, ConfigError):  # not edXML, or not this unit's to sign:
            return data  # the gateway says what is wrong with it
        if here:
            _write_atomically(staged, signed)
        return signed

    def sent(self, item: Outgoing, document_key: str) -> None:
        self._move(item.ref, self.sent_dir)

    def refused(self, item: Outgoing, code: str, message: str, where: str | None) -> None:
        error = {"file": item.ref, "code": code, "message": message, "where": where}
        target = _free_name(self.rejected_dir, item.ref)
        report = json.dumps(error, ensure_ascii=False, indent=1).encode("utf-8")
        _write_atomically(target.with_name(target.name + ".error.json"), report)
        self._move(item.ref, self.rejected_dir, target)

    def _move(self, name: str, folder: Path, target: Path | None = None) -> None:
        source = self.inbox / name
        if source.exists():
            os.replace(source, target or _free_name(folder, name))
            _sync_dir(folder)
            _sync_dir(self.inbox)
        (self.signed_dir / name).unlink(missing_ok=True)

    # -- what the system receives ----------------------------------------------------------

    def deliver(self, copy: Fetched) -> None:
        name = _SAFE.sub("_", copy.delivery_id) + SUFFIX
        pending = self.pending_dir / name
        final = self.outbox / name
        tmp = self.outbox / f".{name}.tmp"
        if pending.exists():  # written before a crash; the system may have taken it already
            if tmp.exists():
                os.replace(tmp, final)
                _sync_dir(self.outbox)
            return
        with tmp.open("wb") as f:
            f.write(copy.data)
            f.flush()
            os.fsync(f.fileno())
        _write_atomically(pending, b"")
        os.replace(tmp, final)
        _sync_dir(self.outbox)

    def acknowledged(self, delivery_id: str) -> None:
        (self.pending_dir / (_SAFE.sub("_", delivery_id) + SUFFIX)).unlink(missing_ok=True)
