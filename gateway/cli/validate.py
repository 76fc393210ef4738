"""``gateway validate``: check edXML packages without verifying their signatures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from gateway.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    FILES_ARGUMENT,
    PROFILE_OPTION,
    echo_json,
    read_input,
    settings,
)
from gateway.envelope import Package, Profile, parse_package
from gateway.errors import PackageRejected


def package_summary(package: Package) -> dict[str, Any]:
    return {
        "kind": package.kind.value,
        "document_id": package.document_id,
        "from": package.sender.organ_id,
        "to": [r.organ_id for r in package.recipients],
        "attachments": len(package.attachments),
        "warnings": [w.code for w in package.warnings],
    }


def rejection_summary(error: PackageRejected) -> dict[str, Any]:
    message = error.message + (f" (at {error.where})" if error.where else "")
    return {"valid": False, "code": error.code, "message": message}


def ok_line(name: str, package: Package) -> str:
    return (
        f"OK {name} kind={package.kind.value} document_id={package.document_id} "
        f"from={package.sender.organ_id} to={len(package.recipients)} "
        f"attachments={len(package.attachments)} warnings={len(package.warnings)}"
    )


def check_files(
    files: tuple[str, ...],
    check: Callable[[str, bytes], tuple[dict[str, Any], list[str]]],
    as_json: bool,
) -> NoReturn:
    """Check each file and print one line per file (with ``as_json``, one JSON array), then
    exit 0 when every file is valid and 1 otherwise. ``check(name, data)`` gives a valid
    file's summary and the lines to print; it raises PackageRejected for an invalid one."""
    results: list[dict[str, Any]] = []
    invalid = 0
    for name in files:
        data = read_input(name)
        try:
            summary, lines = check(name, data)
        except PackageRejected as e:
            invalid += 1
            summary = rejection_summary(e)
            lines = [f"INVALID {name} {summary['code']}: {summary['message']}"]
        else:
            summary = {"valid": True, "code": None, "message": None, **summary}
        results.append({"file": name, **summary})
        if not as_json:
            for line in lines:
                click.echo(line)
    if as_json:
        echo_json(results)
    sys.exit(EXIT_REJECTED if invalid else EXIT_OK)


@click.command()
@PROFILE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per file.")
@click.option("-v", "--verbose", is_flag=True, help="Also print each warning of a valid file.")
@FILES_ARGUMENT
def validate(profile: str, as_json: bool, verbose: bool, files: tuple[str, ...]) -> None:
    """Check edXML packages or status packets: safe XML, the edXML schema and the rules the
    schema cannot express (manifest and attachments, OrganId and DocumentId formats, dates,
    recipients, status codes). Signatures are placed and their algorithms checked, not
    verified: see `gateway verify`.

    FILES are paths; '-' reads standard input. One line per file:

    \b
      OK <file> kind=<document|status> document_id=<id> from=<OrganId> to=<n>
         attachments=<n> warnings=<n>            (on one line)
      INVALID <file> <code>: <message>

    Exit 0 when every file is valid, 1 when any is invalid, 2 on usage errors.
    """
    limits = settings().envelope

    def check(name: str, data: bytes) -> tuple[dict[str, Any], list[str]]:
        package = parse_package(data, Profile(profile), limits)
        lines = [ok_line(name, package)]
        if verbose:
            lines += [f"  warning {w.code}: {w.message}" for w in package.warnings]
        return package_summary(package), lines

    check_files(files, check, as_json)
