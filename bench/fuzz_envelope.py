"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads untrusted bytes: parse_package
(with the status reader, for status packets) and verify_package, in both profiles. Every input
must end in a package or a refusal with a catalogue code; anything else is a crash, which
libFuzzer reports with the input that caused it.

    python bench/fuzz_envelope.py -atheris_runs=20000          # a bounded run
    python bench/fuzz_envelope.py -max_total_time=600 corpus/  # longer, keeping what it finds

The seeds are a signed letter and a signed status packet (tests/security/test_fuzz.py, which
runs the same readers under hypothesis)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

with atheris.instrument_imports():
    from gateway.envelope import parse_package
    from gateway.errors import CODES, PackageRejected
    from gateway.trust import verify_package

from trustkit import NOW

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "security"))
from test_fuzz import KIT, LETTER, STATUS_PACKET

TRUST, DIRECTORY = KIT.trust(), KIT.directory()


def _answer(read: Callable[..., object], *args: object) -> None:
    """A package or a refusal with a catalogue code; any other exception is a crash."""
    try:
        read(*args)
    except PackageRejected as e:
        if e.code not in CODES:
            raise AssertionError(f"{e.code!r} is not in the error catalogue") from e


def test_one_input(data: bytes) -> None:
    for profile in ("strict", "compat"):
        _answer(parse_package, data, profile)
        _answer(verify_package, data, TRUST, DIRECTORY, profile, NOW)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus folder: the seeds
        corpus = Path(tempfile.mkdtemp(prefix="fuzz-envelope-"))
        (corpus / "letter.xml").write_bytes(LETTER)
        (corpus / "status.xml").write_bytes(STATUS_PACKET)
        argv.append(str(corpus))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
