"""The envelope's check (hardened parse + XSD + the other checks) and parse_package (the same and
the model) against raw lxml parse + XMLSchema.validate on the same bytes, for an 8 KiB and a
64 KiB package.

    .venv/bin/python bench/bench_envelope.py [--seconds 3] [--rounds 5]

Goal: check at >= 80 % of the raw rate. check makes every check but reads a valid strict
document's model only when asked (Reading.package()); the last columns read it, for what a
caller that uses every field pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from functools import partial
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from rates import best_rates
from samples import sample_document, with_dummy_signature

from gateway.envelope import Attachment, Kind, Profile, build_package, check, parse_package
from gateway.envelope.schema import load_schema


def package_of_size(target: int) -> bytes:
    """A signed-shaped sample package padded by its attachment to about ``target`` bytes."""
    base = len(with_dummy_signature(build_package(sample_document(attachments=()))))
    room = max(0, target - base - 400)
    data = os.urandom(room * 3 // 4)
    attachment = Attachment("cid:att-1", "cong-van.pdf", "application/pdf", data)
    signed: bytes = with_dummy_signature(build_package(sample_document(attachments=(attachment,))))
    return signed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, lxml {etree.__version__}"
    )
    schema = load_schema(Kind.DOCUMENT, Profile.STRICT)
    raw_parser = etree.XMLParser(resolve_entities=False, no_network=True)
    print(
        f"{'size':>8} {'raw lxml+XSD/s':>15} {'check/s':>16} {'ratio':>6}"
        f" {'parse_package/s':>21} {'ratio':>6}"
    )
    for target in (8 * 1024, 64 * 1024):
        data = package_of_size(target)
        assert parse_package(data).kind == "document"

        def raw(data: bytes = data) -> None:
            root = etree.fromstring(data, raw_parser)
            if not schema.validate(root):
                raise AssertionError(schema.error_log)

        rates = best_rates(
            {
                "raw": raw,
                "ours": partial(check, data),
                "all": partial(parse_package, data),
            },
            args.seconds * 3,
            args.rounds,
        )
        base = rates["raw"]
        print(
            f"{len(data):>8} {base:>15,.0f} {rates['ours']:>16,.0f} {rates['ours'] / base:>6.0%}"
            f" {rates['all']:>21,.0f} {rates['all'] / base:>6.0%}"
        )


if __name__ == "__main__":
    main()
