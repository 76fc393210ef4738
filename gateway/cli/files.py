"""Files in and out: ``gateway submit`` sends edXML files another system made (signing the
unsigned ones with the unit's keys), and ``gateway inbox extract`` writes a received letter's
attachments to a folder.

An attachment's name is whatever the sender wrote in the package, so it is treated as
hostile: ``safe_name`` turns it into one plain file name inside the folder (no directories,
no ``..``, no absolute path, no control characters, no name Windows reserves), and
``write_attachments`` writes each file atomically without ever writing through a link that is
already in the folder."""

from __future__ import annotations

import os
import sys
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gateway.cli.client import JSON_OPTION, TOKEN_OPTION, URL_OPTION, call
from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    FILES_ARGUMENT,
    PROFILE_OPTION,
    echo_json,
    exits,
    fail_environment,
    read_input,
    settings,
)
from gateway.client import ApiError, GatewayClient, sign_if_unsigned
from gateway.envelope import Attachment, Profile, parse_package
from gateway.errors import GatewayError, Origin

# -- gateway submit ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one file: its document key, or the code and message of its refusal."""

    file: str
    status: int | None = None
    answer: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    signed_here: bool = False

    @property
    def ok(self) -> bool:
        return self.code is None

    def line(self) -> str:
        if not self.ok:
            return f"ERROR {self.file} {self.code}: {self.message}"
        assert self.answer is not None
        notes = [" signed-here"] if self.signed_here else []
        notes += [" already-submitted"] if self.status == 200 else []
        return f"OK {self.file} {self.answer.get('document_key')}{''.join(notes)}"

    def to_json(self) -> dict[str, Any]:
        if not self.ok:
            return {
                "file": self.file,
                "ok": False,
                "status": self.status,
                "code": self.code,
                "message": self.message,
            }
        return {
            "file": self.file,
            "ok": True,
            "status": self.status,
            "signed_here": self.signed_here,
            "answer": self.answer,
        }


async def _submit_one(
    gw: GatewayClient, name: str, data: bytes, keys: Path | None, profile: str | None
) -> Outcome:
    """One file: signed first when it is unsigned and there are keys, then submitted. A
    refusal (by the gateway, or of bytes that cannot be signed) is the file's outcome; what
    the environment lacks (an unreachable gateway, a missing key) is raised, as everywhere."""
    outcome = Outcome(name)
    try:
        if keys is not None:
            data, outcome.signed_here = sign_if_unsigned(data, keys, settings().envelope)
        submitted = await gw.submit(data, profile=profile)
    except ApiError as e:
        outcome.status, outcome.code, outcome.message = e.status, e.code, e.detail
        return outcome
    except GatewayError as e:
        if e.error.origin is Origin.SERVER:
            raise
        outcome.code, outcome.message = e.code, e.message
        return outcome
    outcome.status, outcome.answer = submitted.status, submitted.answer
    return outcome


@click.command()
@URL_OPTION
@TOKEN_OPTION
@click.option(
    "--sign-with-keys",
    "keys",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Sign the files that carry no signature with their sender's key from this key "
    "folder (units/<CODE>/key.pem and cert.pem); signed files are sent as they are.",
)
@PROFILE_OPTION
@JSON_OPTION
@FILES_ARGUMENT
def submit(
    url: str | None,
    token: str | None,
    keys: Path | None,
    profile: str,
    as_json: bool,
    files: tuple[str, ...],
) -> None:
    """Submit existing edXML packages or status packets (- reads one from standard input).

    One line per file, in order: OK <file> <document key> (with signed-here when it was signed
    with --sign-with-keys, already-submitted when the gateway had it), or ERROR <file>
    <code>: <message> when the gateway, or the signing, refused it; the other files are still
    sent. An unsigned file signed here twice is two packages (ECDSA signatures differ) and
    the second is a duplicate_conflict: to retry, sign it once with `gateway sign`. --json
    prints one object per file instead. Exit 0 when every file was accepted, 1
    when one was refused, 2 when the gateway cannot be reached, a file cannot be read or a
    key is missing (the files after it are not sent).

    \b
    gateway submit letters/*.edxml
    gateway submit --sign-with-keys var/keys made-by-the-document-system.xml
    """
    if files.count("-") > 1:
        raise click.UsageError("standard input (-) can be read only once")
    chosen = None if profile == Profile.STRICT else profile

    async def work(gw: GatewayClient) -> list[Outcome]:
        outcomes = []
        for name in files:  # one file in memory at a time: a folder of scans may be large
            outcome = await _submit_one(gw, name, read_input(name), keys, chosen)
            if not as_json:
                click.echo(outcome.line())
            outcomes.append(outcome)
        return outcomes

    outcomes = call(url, token, work)
    if as_json:
        echo_json([o.to_json() for o in outcomes])
    refused = sum(not o.ok for o in outcomes)
    click.echo(f"{len(outcomes) - refused} accepted, {refused} refused", err=True)
    sys.exit(EXIT_REJECTED if refused else EXIT_OK)


# -- safe names --------------------------------------------------------------------------------

# Names Windows keeps for devices, with or without an extension ("con.txt" is the console).
RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{device}{n}" for device in ("com", "lpt") for n in "123456789¹²³"}
)
UNSAFE_CHARACTERS = frozenset('<>:"/\\|?*')
MAX_NAME_BYTES = 255  # the longest file name ext4, NTFS and APFS take (in UTF-8 bytes here)


def _plain(ch: str) -> str:
    """A character as it may stand in a file name: control and invisible format characters
    (NUL, newlines, the right-to-left override that disguises an extension) and the
    characters Windows refuses become '_'."""
    if ch in UNSAFE_CHARACTERS or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return "_"
    return ch


def _shorten(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """At most ``limit`` UTF-8 bytes, cut from the stem so that the extension stays."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = name, ""
    room = limit - len(ext.encode()) - (1 if ext else 0)
    cut = stem.encode()[:room].decode("utf-8", "ignore")
    return f"{cut}.{ext}" if ext else cut


def safe_name(name: str, fallback: str) -> str:
    """One plain file name for an attachment named ``name``: its last path component (either
    slash), NFC-normalised, unsafe characters replaced, leading dots and spaces and trailing
    dots and spaces dropped (no hidden file, no '..', nothing Windows trims), a reserved
    device name prefixed with '_', at most 255 bytes; ``fallback`` when nothing is left."""
    last = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(_plain(ch) for ch in last).strip(" .")
    if not cleaned.strip("_ ."):
        cleaned = fallback
    if cleaned.split(".", 1)[0].rstrip(" ").lower() in RESERVED:
        cleaned = "_" + cleaned
    return _shorten(cleaned)


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return _shorten(f"{name}-{n}")
    suffix = f"-{n}.{ext}"
    return _shorten(stem, MAX_NAME_BYTES - len(suffix.encode())) + suffix


def plan_names(names: Sequence[str], folder: Path, overwrite: bool) -> list[str]:
    """A distinct safe name for each attachment, in order. Names are compared without case
    (as Windows and macOS compare them); one that is already taken in the letter, or (unless
    ``overwrite``) by anything in the folder, gets -2, -3, … before its extension."""
    taken: set[str] = set()
    chosen = []
    for index, original in enumerate(names, 1):
        base = safe_name(original, f"attachment-{index}")
        candidate, n = base, 1
        while candidate.casefold() in taken or (
            not overwrite and os.path.lexists(folder / candidate)
        ):
            n += 1
            candidate = _numbered(base, n)
        taken.add(candidate.casefold())
        chosen.append(candidate)
    return chosen


def _write_atomically(folder: Path, name: str, data: bytes) -> None:
    """A new file written in full under a temporary name of its own (created exclusively, so
    never through a link), flushed to disk, then renamed over ``name``: a reader never sees a
    half-written attachment, and a link already called ``name`` is replaced, not followed."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".extract-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Written:
    attachment: Attachment
    path: Path


def write_attachments(
    attachments: Sequence[Attachment], folder: Path, *, overwrite: bool = False
) -> list[Written]:
    """Write each attachment into ``folder`` (created if needed) under its planned safe
    name; every file lands directly in the folder, whatever the attachment says."""
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    names = plan_names([a.name for a in attachments], folder, overwrite)
    written = []
    for attachment, name in zip(attachments, names, strict=True):
        _write_atomically(folder, name, attachment.data)
        written.append(Written(attachment, folder / name))
    return written


# -- gateway inbox extract ---------------------------------------------------------------------


@click.command("extract")
@URL_OPTION
@TOKEN_OPTION
@click.argument("delivery_id")
@click.option(
    "--to",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write the attachments in (created if needed).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace files of the same name in the folder (default: keep them, number the new).",
)
@JSON_OPTION
def extract(
    url: str | None,
    token: str | None,
    delivery_id: str,
    folder: Path,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Fetch a copy from your inbox and write its attachments to a folder.

    Each attachment is written under a safe name: the last part of its AttachmentName with
    unsafe characters replaced, so that a name such as ../../x or /etc/passwd lands in the
    folder as x or passwd; clashing names are numbered. The package is read in the compat
    profile, since the gateway checked it when it was submitted; its signature is not
    checked again here (`gateway inbox fetch` and `gateway verify` do that). The copy stays
    in the inbox until `gateway inbox ack`. One line per attachment: the file, its size,
    its content type and, when it was renamed, the name the package gave it."""
    fetched = call(url, token, lambda gw: gw.fetch(delivery_id), as_json)
    with exits():
        package = parse_package(fetched.data, Profile.COMPAT, settings().envelope)
    try:
        written = write_attachments(package.attachments, folder, overwrite=overwrite)
    except OSError as e:
        fail_environment(f"cannot write to {folder}: {e.strerror or e}")
    if as_json:
        echo_json(
            {
                "delivery_id": fetched.delivery_id,
                "document_key": package.document_key,
                "files": [
                    {
                        "path": str(w.path),
                        "attachment_name": w.attachment.name,
                        "content_type": w.attachment.content_type,
                        "size": w.attachment.size,
                        "sha256": w.attachment.sha256,
                    }
                    for w in written
                ],
            }
        )
        return
    for w in written:
        renamed = f"  (named {w.attachment.name!r})" if w.path.name != w.attachment.name else ""
        click.echo(f"{w.path}  {w.attachment.size} bytes  {w.attachment.content_type}{renamed}")
    click.echo(
        f"{len(written)} attachment(s) of {package.document_key} -> {folder.resolve()}", err=True
    )
