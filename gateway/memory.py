"""The serving process's memory allocator.

glibc's malloc gives threads that allocate at the same time arenas of their own, up to eight
per core, and hands little of them back. The gateway's threads (one per pooled SQLite
connection, the verification and file threads) each grew one: under a steady load the
resident memory climbed by about 3 MiB a minute, with Python's own heap flat. Two arenas keep
it level at the same CPU cost (docs/reliability.md, "Soak").
"""

from __future__ import annotations

import ctypes
import os

ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def bound_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas for the threads that allocate from now on.

    Nothing is changed where ``MALLOC_ARENA_MAX`` is set (glibc read it at start) or where the
    C library is not glibc; the answer says whether the limit was set here.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library of this process
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
