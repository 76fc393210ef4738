"""verify_package against signxml's own verify() with a pinned certificate on the same bytes,
for an 8 KiB and a 64 KiB signed package; and `gateway keys init` for the sample directory.

verify_package of a valid strict document: hardened parse, the strict edXML schema (which
also stands for the signature policy and for signxml's own XMLDSig schema), signxml with the
certificate and location pinned, cached chain and CRL checks, the checks the schema cannot
express, the sender binding; the model is read from the signed XML when first used. Also
shown: verify_package with every field of the model read, and verify_signature (the
signature layer alone, the path any package that fails a check takes). All are measured in
alternating rounds and each keeps its best round, so that load from other processes on the
machine hurts all of them alike.

    .venv/bin/python bench/bench_verify.py [--seconds 3] [--rounds 5] [--rsa]

Goals (issue 3): verify_package at >= 85 % of signxml's rate; keys init (EC) in < 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from functools import partial
from importlib.metadata import version
from pathlib import Path

from cryptography import x509
from signxml.verifier import XMLVerifier

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from rates import best_rates
from samples import sample_document

from gateway.directory import Directory, load_directory
from gateway.envelope import Attachment, build_package
from gateway.trust import (
    TrustStore,
    init_keys,
    load_trust,
    load_unit_signer,
    sign_package,
    verify_package,
)
from gateway.trust.pki import SigningKey
from gateway.trust.verify import verify_signature

SENDER = "000.00.05.H07"


def package_of_size(target: int, key: SigningKey, cert: x509.Certificate) -> bytes:
    """A package signed by SENDER, padded by its attachment to about ``target`` bytes."""
    empty = sign_package(build_package(sample_document(attachments=())), key, cert)
    room = max(0, target - len(empty) - 200)
    data = os.urandom(room * 3 // 4)
    attachment = Attachment("cid:att-1", "cong-van.pdf", "application/pdf", data)
    return sign_package(build_package(sample_document(attachments=(attachment,))), key, cert)


def _signxml(data: bytes, cert: x509.Certificate) -> object:
    return XMLVerifier().verify(data, x509_cert=cert)


def _read(data: bytes, trust: TrustStore, directory: Directory, now: dt.datetime) -> object:
    """verify_package with the model read."""
    return verify_package(data, trust, directory, "strict", now).package


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--rsa", action="store_true", help="also time keys init with RSA-2048")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, signxml {version('signxml')}, lxml {version('lxml')}, "
        f"cryptography {version('cryptography')}"
    )
    directory = load_directory()
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ("ec", "rsa") if args.rsa else ("ec",):
            keys = Path(tmp) / algorithm
            started = time.perf_counter()
            init_keys(keys, directory, algorithm=algorithm)
            elapsed = time.perf_counter() - started
            print(
                f"keys init ({algorithm}): {len(directory)} units in {elapsed:.2f} s "
                "(goal < 30 s for ec)"
            )
        keys = Path(tmp) / "ec"
        trust = load_trust(keys)
        key, cert = load_unit_signer(keys, SENDER)
        now = dt.datetime.now(dt.UTC)
        for size in (8 * 1024, 64 * 1024):
            data = package_of_size(size, key, cert)
            rates = best_rates(
                {
                    "signxml": partial(_signxml, data, cert),
                    "package": partial(verify_package, data, trust, directory, "strict", now),
                    "read": partial(_read, data, trust, directory, now),
                    "signature": partial(verify_signature, data, trust, "strict", now),
                },
                args.seconds * 3,
                args.rounds,
            )
            base = rates["signxml"]
            print(
                f"{len(data) / 1024:5.1f} KiB: signxml verify() {base:6.0f}/s | "
                f"verify_package {rates['package']:6.0f}/s = {rates['package'] / base:4.0%} "
                f"(goal >= 85 %) | + every field read {rates['read']:6.0f}/s = "
                f"{rates['read'] / base:4.0%} | verify_signature {rates['signature']:6.0f}/s = "
                f"{rates['signature'] / base:4.0%}"
            )


if __name__ == "__main__":
    main()
