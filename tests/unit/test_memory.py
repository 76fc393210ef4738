"""The serving process bounds glibc's malloc arenas, so that threads allocating at once share
two arenas instead of growing one each (docs/reliability.md, "Soak")."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")

# Eight threads allocating at the same moment, then glibc's own count of its arenas.
PROBE = textwrap.dedent(
    """
    import ctypes, sys, threading
    from gateway.memory import bound_malloc_arenas
    if sys.argv[1] == "bound":
        assert bound_malloc_arenas()
    barrier = threading.Barrier(8)
    def work():
        barrier.wait()
        kept = [bytearray(200) for _ in range(20000)]
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def arenas(mode: str, **env: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_threads_allocating_at_once_share_two_arenas_once_bounded() -> None:
    assert arenas("free") > 2  # the probe does make threads grow arenas of their own
    assert arenas("bound") <= 2


def test_an_operators_malloc_arena_max_is_left_as_it_is() -> None:
    with pytest.raises(subprocess.CalledProcessError):  # bound_malloc_arenas() answers False
        arenas("bound", MALLOC_ARENA_MAX="4")
    assert arenas("free", MALLOC_ARENA_MAX="4") <= 4
