"""``gateway keys``, ``gateway sign`` and ``gateway verify``: the development PKI, signing
packages and verifying them against a trust store and the unit directory."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from gateway.cli.common import (
    EXIT_REJECTED,
    FILES_ARGUMENT,
    PROFILE_OPTION,
    fail_environment,
    read_input,
    record_action,
    settings,
)
from gateway.cli.units import DIRECTORY_OPTION, open_directory
from gateway.cli.validate import check_files, package_summary
from gateway.errors import ConfigError, PackageRejected
from gateway.trust import (
    TrustStore,
    fingerprint,
    init_keys,
    issue_unit,
    load_trust,
    load_unit_signer,
    reissue_crl,
    revoke_unit,
    rotate_unit,
    sign_package,
    verify_package,
)
from gateway.trust.keyfiles import KeysLayout
from gateway.trust.pki import Algorithm, SigningKey

KEYS_DIR = click.Path(file_okay=False, path_type=Path)
REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation": x509.ReasonFlags.cessation_of_operation,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
}


@click.group()
def keys() -> None:
    """The development PKI: a root and an intermediate CA, one signing key per unit, the
    gateway key and the CRL. Generated keys are for development and tests only."""


@keys.command("init")
@click.option("--out", required=True, type=KEYS_DIR, help="Folder to create the keys in.")
@DIRECTORY_OPTION
@click.option(
    "--algorithm",
    type=click.Choice(["ec", "rsa"]),
    default="ec",
    show_default=True,
    help="Unit and CA keys: EC P-256 (CAs P-384) or RSA-2048 (CAs RSA-3072).",
)
@click.option("--force", is_flag=True, help="Replace the keys already in --out.")
def keys_init(out: Path, directory_file: Path | None, algorithm: str, force: bool) -> None:
    """Create a root CA, an intermediate CA, a signing key and certificate for every unit of
    the directory (OrganId in the subject serialNumber, valid 2 years), the gateway's Ed25519
    key and certificate, an empty CRL and OUT/trust.pem. See keys/README.md for the layout."""
    directory = open_directory(directory_file)
    started = dt.datetime.now(dt.UTC)
    try:
        with click.progressbar(
            length=len(directory), label="Issuing unit certificates", file=sys.stderr
        ) as bar:
            layout = init_keys(
                out,
                directory,
                algorithm="rsa" if algorithm == "rsa" else "ec",
                force=force,
                progress=bar.update,
            )
    except ConfigError as e:
        fail_environment(e.message)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    click.echo(
        f"Created a development PKI ({algorithm.upper()}) for {len(directory)} units in "
        f"{layout.root} ({seconds:.1f} s): trust bundle {layout.trust_pem}, CRL {layout.crl_pem}, "
        f"gateway key {layout.gateway_key}"
    )


@keys.command("revoke")
@click.option("--keys", "keys_dir", required=True, type=KEYS_DIR, help="Key folder.")
@click.option("--serial", help="Revoke this certificate (hex serial) instead of the current one.")
@click.option(
    "--reason", type=click.Choice(sorted(REASONS)), default="unspecified", show_default=True
)
@click.argument("code")
def keys_revoke(keys_dir: Path, serial: str | None, reason: str, code: str) -> None:
    """Revoke a unit's certificate and re-issue the CRL (OUT/crl.pem)."""
    try:
        number = int(serial, 16) if serial else None
    except ValueError:
        fail_environment(f"--serial {serial!r} is not a hexadecimal number")
    try:
        cert, new = revoke_unit(keys_dir, code, serial=number, reason=REASONS[reason])
    except ConfigError as e:
        fail_environment(e.message)
    state = "revoked" if new else "was already revoked"
    click.echo(
        f"{code}: certificate {cert.serial_number:x} (sha256 {fingerprint(cert)}) {state}; "
        f"CRL re-issued at {KeysLayout(keys_dir).crl_pem}; a gateway reading it refuses the "
        "certificate within seconds"
    )
    if new:
        _record_key("key_revoke", code, cert, reason=reason)


@keys.command("rotate")
@click.option("--keys", "keys_dir", required=True, type=KEYS_DIR, help="Key folder.")
@click.argument("code")
def keys_rotate(keys_dir: Path, code: str) -> None:
    """Issue a new key and certificate for a unit. The old certificate stays valid until it
    expires or is revoked (`gateway keys revoke --serial`)."""
    try:
        old, new = rotate_unit(keys_dir, code)
    except ConfigError as e:
        fail_environment(e.message)
    click.echo(
        f"{code}: new certificate {new.serial_number:x} (sha256 {fingerprint(new)}); "
        f"the old one {old.serial_number:x} stays valid until "
        f"{old.not_valid_after_utc:%Y-%m-%d} unless revoked"
    )
    _record_key("key_rotate", code, new, old_serial=f"{old.serial_number:x}")


@keys.command("issue")
@click.option("--keys", "keys_dir", required=True, type=KEYS_DIR, help="Key folder.")
@DIRECTORY_OPTION
@click.option(
    "--algorithm",
    type=click.Choice(["ec", "rsa"]),
    help="The unit key: EC P-256 or RSA-2048 (default: the intermediate CA's kind).",
)
@click.argument("code")
def keys_issue(
    keys_dir: Path, directory_file: Path | None, algorithm: str | None, code: str
) -> None:
    """Issue a key and certificate for unit CODE (one added to the directory, with no key
    yet) under the folder's intermediate CA; its fingerprint joins fingerprints.csv. A unit
    that has a key already is refused (`gateway keys rotate` replaces it).

    \b
      gateway units add 000.00.30.H07 --name "Sở Du lịch" --parent 000.00.00.H07 \\
          --level 2 --delivery pull
      gateway keys issue --keys var/keys 000.00.30.H07
    """
    directory = open_directory(directory_file)
    try:
        kind: Algorithm | None = "rsa" if algorithm == "rsa" else "ec" if algorithm else None
        cert = issue_unit(keys_dir, directory, code, algorithm=kind)
    except ConfigError as e:
        fail_environment(e.message)
    layout = KeysLayout(keys_dir)
    click.echo(
        f"{code}: key {layout.unit_key(code)} and certificate {cert.serial_number:x} "
        f"(sha256 {fingerprint(cert)}), valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    )
    _record_key("key_issue", code, cert)


def _record_key(action: str, code: str, cert: x509.Certificate, **details: str) -> None:
    from gateway.service.actions import Actor, operator_event

    record_action(
        operator_event(
            action,
            Actor.command_line(),
            unit=code,
            serial=f"{cert.serial_number:x}",
            cert_sha256=fingerprint(cert),
            **details,
        )
    )


@keys.command("crl")
@click.option("--keys", "keys_dir", required=True, type=KEYS_DIR, help="Key folder.")
def keys_crl(keys_dir: Path) -> None:
    """Re-issue the CRL with the same entries and fresh dates (before it runs out)."""
    try:
        crl = reissue_crl(keys_dir)
    except ConfigError as e:
        fail_environment(e.message)
    click.echo(
        f"CRL re-issued with {len(list(crl))} entries, next update {crl.next_update_utc:%Y-%m-%d}"
        if crl.next_update_utc
        else "CRL re-issued"
    )


def _signer(
    keys_dir: Path | None, unit: str | None, key: Path | None, cert: Path | None
) -> tuple[SigningKey, x509.Certificate]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if keys_dir is not None and unit is not None and key is None and cert is None:
        try:
            return load_unit_signer(keys_dir, unit)
        except ConfigError as e:
            fail_environment(e.message)
    if key is not None and cert is not None and keys_dir is None and unit is None:
        try:
            private = load_pem_private_key(key.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        except (OSError, ValueError, TypeError) as e:
            fail_environment(f"cannot load the key or certificate: {e}")
        if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            fail_environment(f"{key} is a {type(private).__name__}; EC or RSA keys sign packages")
        return private, certificate
    fail_environment("give either --keys DIR --unit CODE, or --key KEY --cert CERT")


@click.command()
@click.option("--keys", "keys_dir", type=KEYS_DIR, help="Key folder (with --unit).")
@click.option("--unit", metavar="CODE", help="Sign as this unit (its key in --keys).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, help="Signed package ('-' for standard output).")
@click.argument("input_file", metavar="IN", type=click.Path(exists=True, allow_dash=True))
def sign(
    keys_dir: Path | None,
    unit: str | None,
    key: Path | None,
    cert: Path | None,
    output: str,
    input_file: str,
) -> None:
    """Sign an edXML package: an enveloped XMLDSig signature (one Reference URI="", exclusive
    C14N, SHA-256, ECDSA or RSA) as the last child of edXMLHeader, with the signer certificate.

    Exit 1 if IN is not an unsigned edXML package, 2 on usage errors."""
    private, certificate = _signer(keys_dir, unit, key, cert)
    data = read_input(input_file)
    try:
        signed = sign_package(data, private, certificate, limits=settings().envelope)
    except PackageRejected as e:
        click.echo(f"INVALID {input_file} {e.code}: {e.message}", err=True)
        sys.exit(EXIT_REJECTED)
    if output == "-":
        sys.stdout.buffer.write(signed)
        return
    try:
        Path(output).write_bytes(signed)
    except OSError as e:
        fail_environment(f"cannot write {output}: {e.strerror}")
    click.echo(f"SIGNED {output} signer={unit or '-'} cert={fingerprint(certificate)}", err=True)


def _trust(keys_dir: Path | None, trust_pem: Path | None, crl: Path | None) -> TrustStore:
    config = settings()
    if keys_dir is None and trust_pem is None:
        keys_dir, trust_pem, crl = config.keys, config.trust, config.crl
    try:
        if trust_pem is not None:
            return TrustStore.from_files(trust_pem, crl)
        if keys_dir is not None:
            return load_trust(keys_dir)
    except ConfigError as e:
        fail_environment(e.message)
    fail_environment("no trust store: pass --keys DIR or --trust PEM (or set GATEWAY_KEYS)")


def verified_summary(result: Any) -> dict[str, Any]:
    return {
        "signature_state": result.signature_state.value,
        "signer": result.signer,
        "cert_sha256": result.cert_sha256,
        "problem": result.problem,
        "problem_message": result.message,
    }


@click.command()
@PROFILE_OPTION
@click.option("--keys", "keys_dir", type=KEYS_DIR, help="Key folder: its trust.pem and crl.pem.")
@click.option(
    "--trust",
    "trust_pem",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle (PEM).",
)
@click.option(
    "--crl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CRL (PEM or DER) to check revocation against, with --trust.",
)
@DIRECTORY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per file.")
@FILES_ARGUMENT
def verify(
    profile: str,
    keys_dir: Path | None,
    trust_pem: Path | None,
    crl: Path | None,
    directory_file: Path | None,
    as_json: bool,
    files: tuple[str, ...],
) -> None:
    """Verify signed edXML packages: everything `gateway validate` checks, then the XMLDSig
    signature (one signature, last in edXMLHeader, one Reference URI="", SHA-256 or stronger),
    the signer certificate (chain to the trust store, validity, CRL, KeyUsage) and its binding
    to From/OrganId (certificate subject or directory pin). The model is read from the signed
    XML only. One line per file:

    \b
      VALID <file> signer=<OrganId> cert=<sha256>
      VALID <file> signer=<OrganId|-> cert=<sha256|-> state=<state> problem=<code>   (compat)
      INVALID <file> <code>: <message>

    Exit 0 when every file is valid, 1 when any is invalid, 2 on usage errors.
    """
    if crl is not None and trust_pem is None:
        fail_environment("--crl goes with --trust (a key folder has its own crl.pem)")
    if keys_dir is not None and trust_pem is not None:
        fail_environment("give either --keys or --trust, not both")
    trust = _trust(keys_dir, trust_pem, crl)
    directory = open_directory(directory_file)
    limits = settings().envelope
    now = dt.datetime.now(dt.UTC)

    def check(name: str, data: bytes) -> tuple[dict[str, Any], list[str]]:
        result = verify_package(data, trust, directory, profile, now, limits=limits)
        line = f"VALID {name} signer={result.signer or '-'} cert={result.cert_sha256 or '-'}"
        if not result.valid:
            line += f" state={result.signature_state.value} problem={result.problem}"
        return {**package_summary(result.package), **verified_summary(result)}, [line]

    check_files(files, check, as_json)
