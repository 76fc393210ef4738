"""Attachment names are the sender's words: whatever a package calls an attachment, `gateway
inbox extract` writes it as one plain file directly in the folder it was given, never
elsewhere, never through a link, never over another attachment of the same letter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.cli.files import MAX_NAME_BYTES, plan_names, safe_name, write_attachments
from gateway.client import make_attachment

HOSTILE = {
    "../../x": "x",
    "../../../../etc/cron.d/job": "job",
    "/etc/passwd": "passwd",
    "C:\\Windows\\System32\\evil.dll": "evil.dll",
    "C:evil.exe": "C_evil.exe",
    "\\\\server\\share\\a.pdf": "a.pdf",
    "..": "attachment-1",
    ".": "attachment-1",
    "...": "attachment-1",
    "dir/": "attachment-1",
    "": "attachment-1",
    "   ": "attachment-1",
    "a\x00b.pdf": "a_b.pdf",
    "\x00": "attachment-1",
    "line\nbreak\r.txt": "line_break_.txt",
    "bell\x07\x1b[31m.txt": "bell__[31m.txt",
    "invoice\u202efdp.exe": "invoice_fdp.exe",  # right-to-left override disguising .exe
    "CON": "_CON",
    "con.txt": "_con.txt",
    "Nul .pdf": "_Nul .pdf",
    "COM1.log": "_COM1.log",
    "lpt9": "_lpt9",
    "com¹.txt": "_com¹.txt",
    "console.txt": "console.txt",
    'a<b>c:d"e|f?g*h.pdf': "a_b_c_d_e_f_g_h.pdf",
    "report.pdf.": "report.pdf",
    " .hidden": "hidden",
    ".bashrc": "bashrc",
    "Công văn số 12.pdf": "Công văn số 12.pdf",
    "Co\u0302ng.pdf": "Công.pdf",  # NFD as a Mac writes it, NFC on disk
}


@pytest.mark.parametrize(("name", "expected"), HOSTILE.items())
def test_a_hostile_name_becomes_one_plain_file_name(name: str, expected: str) -> None:
    safe = safe_name(name, "attachment-1")
    assert safe == expected
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in ("", ".", "..") and not safe.startswith(".")


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension() -> None:
    safe = safe_name("đ" * 300 + ".pdf", "attachment-1")
    assert len(safe.encode()) <= MAX_NAME_BYTES and safe.endswith(".pdf")
    assert safe.rstrip(".pdf").strip("đ") == ""  # cut on a character, not inside one


def test_clashing_names_are_numbered_without_regard_to_case(tmp_path: Path) -> None:
    names = ["a.pdf", "A.PDF", "../a.pdf", "b", "b", "b-2", "CON", "con"]
    planned = plan_names(names, tmp_path, overwrite=False)
    assert planned == ["a.pdf", "A-2.PDF", "a-3.pdf", "b", "b-2", "b-2-2", "_CON", "_con-2"]
    assert len({p.casefold() for p in planned}) == len(planned)


def test_files_already_in_the_folder_are_kept_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"mine")
    first = write_attachments([make_attachment("a.pdf", b"theirs")], tmp_path)
    assert [w.path.name for w in first] == ["a-2.pdf"]
    assert (tmp_path / "a.pdf").read_bytes() == b"mine"
    again = write_attachments([make_attachment("a.pdf", b"new")], tmp_path, overwrite=True)
    assert [w.path.name for w in again] == ["a.pdf"]
    assert (tmp_path / "a.pdf").read_bytes() == b"new"


def test_every_file_lands_in_the_folder_and_nowhere_else(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "letter"
    attachments = [
        make_attachment(name, name.encode() or b"empty", i)
        for i, name in enumerate(HOSTILE, 1)
        if name
    ]
    written = write_attachments(attachments, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(w.path.name for w in written)
    assert len(written) == len(attachments)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != folder] == []
    for w in written:
        assert w.path.parent == folder.resolve() and w.path.read_bytes() == w.attachment.data


def test_a_link_in_the_folder_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    folder = tmp_path / "in"
    folder.mkdir()
    os.symlink(outside, folder / "x")
    os.symlink(tmp_path / "nowhere", folder / "y")  # a dangling link is taken too
    written = write_attachments(
        [make_attachment("../../x", b"attack", 1), make_attachment("y", b"attack", 2)], folder
    )
    assert [w.path.name for w in written] == ["x-2", "y-2"]
    assert outside.read_bytes() == b"precious" and not (tmp_path / "nowhere").exists()
    # --overwrite replaces the link itself, and the file it pointed to is untouched
    write_attachments([make_attachment("x", b"replaced")], folder, overwrite=True)
    assert not (folder / "x").is_symlink() and (folder / "x").read_bytes() == b"replaced"
    assert outside.read_bytes() == b"precious"


def test_nothing_half_written_is_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_attachments([make_attachment("a.pdf", b"data")], tmp_path)
    assert list(tmp_path.iterdir()) == []
