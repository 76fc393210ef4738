"""parse_package (hardened parse + XSD + semantic checks + model) against raw lxml parse +
XMLSchema.validate on the same bytes, for an 8 KiB and a 64 KiB package.

    .venv/bin/python bench/bench_envelope.py [--seconds 3]

Goal (issue 2): parse_package at >= 80 % of the raw rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from samples import sample_document, with_dummy_signature

from gateway.envelope import Attachment, Kind, Profile, build_package, parse_package
from gateway.envelope.schema import load_schema


def package_of_size(target: int) -> bytes:
    """A signed-shaped sample package padded by its attachment to about ``target`` bytes."""
    base = len(with_dummy_signature(build_package(sample_document(attachments=()))))
    room = max(0, target - base - 400)
    data = os.urandom(room * 3 // 4)
    attachment = Attachment("cid:att-1", "cong-van.pdf", "application/pdf", data)
    return with_dummy_signature(build_package(sample_document(attachments=(attachment,))))


def rate(work: Callable[[], object], seconds: float) -> float:
    work()  # warm caches (schema load, parser)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(50):
            work()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, lxml {etree.__version__}"
    )
    schema = load_schema(Kind.DOCUMENT, Profile.STRICT)
    raw_parser = etree.XMLParser(resolve_entities=False, no_network=True)
    print(f"{'size':>8} {'parse_package/s':>16} {'raw lxml+XSD/s':>15} {'ratio':>6}")
    for target in (8 * 1024, 64 * 1024):
        data = package_of_size(target)
        assert parse_package(data).kind == "document"

        def raw(data: bytes = data) -> None:
            root = etree.fromstring(data, raw_parser)
            if not schema.validate(root):
                raise AssertionError(schema.error_log)

        ours = rate(lambda data=data: parse_package(data), args.seconds)
        theirs = rate(raw, args.seconds)
        print(f"{len(data):>8} {ours:>16,.0f} {theirs:>15,.0f} {ours / theirs:>6.0%}")


if __name__ == "__main__":
    main()
