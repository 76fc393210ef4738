"""``gateway validate``: check edXML packages without verifying their signatures."""

from __future__ import annotations

import sys
from typing import Any

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
    results: list[dict[str, Any]] = []
    invalid = 0
    for name in files:
        data = read_input(name)
        try:
            package = parse_package(data, Profile(profile), limits)
        except PackageRejected as e:
            invalid += 1
            result = {"file": name, **rejection_summary(e)}
            if not as_json:
                click.echo(f"INVALID {name} {result['code']}: {result['message']}")
        else:
            result = {"file": name, "valid": True, "code": None, "message": None}
            result.update(package_summary(package))
            if not as_json:
                click.echo(ok_line(name, package))
                if verbose:
                    for w in package.warnings:
                        click.echo(f"  warning {w.code}: {w.message}")
        results.append(result)
    if as_json:
        echo_json(results)
    sys.exit(EXIT_REJECTED if invalid else EXIT_OK)
