"""The serving process's memory: its allocator and its garbage collector.

glibc's malloc gives threads that allocate at the same time arenas of their own, up to eight
per core, and hands little of them back. The gateway's threads (one per pooled SQLite
connection, the verification and file threads) each grew one: under a steady load the
resident memory climbed by about 3 MiB a minute, with Python's own heap flat. Two arenas keep
it level at the same CPU cost (docs/reliability.md, "Soak").

Python's collector, in its full passes, walks every object that lives in the process; most are
what start-up made and keeps (modules, the directory, schemas, the application), and a full
pass over them stopped a worker's event loop for 115–240 ms under load, every request of that
worker waiting (docs/performance.md, "Pauses of the collector"). Once started, the gateway
moves them out of the collector's reach.
"""

from __future__ import annotations

import ctypes
import gc
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


def freeze_start_up() -> int:
    """Collect once, then leave every object that survives out of the collector's later passes
    (``gc.freeze``): call when start-up is done. Objects made afterwards are collected as
    before. Returns how many objects were set aside."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
