"""Once started, the gateway leaves what start-up made out of the garbage collector's passes,
and still collects what it makes afterwards (gateway/memory.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a process of its own: freezing the test session's objects would outlive the test.
PROBE = textwrap.dedent(
    """
    import gc
    from gateway.memory import freeze_start_up

    class Node:
        pass

    start_up = [Node() for _ in range(50_000)]  # what start-up made and keeps
    assert freeze_start_up() >= len(start_up)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(node) in tracked for node in start_up), "start-up's objects still scanned"

    later = Node()
    later.me = later  # a cycle made while serving, then dropped
    del later
    assert gc.collect() >= 1, "a cycle made after start-up was not collected"
    print("ok")
    """
)


def test_start_up_objects_leave_the_collector_and_later_garbage_is_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
