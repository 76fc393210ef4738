"""Secret key files the gateway makes for itself on first use (the façade's secrets key, the
webhook master key): readable by their owner only, and made once even when several processes
start at the same moment."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gateway.errors import ConfigError


def read_or_make(path: Path, make: Callable[[], bytes], what: str) -> bytes:
    """The contents of the key file at ``path``, made with ``make()`` if there is none. The
    key is written whole to a temporary file and linked into place, so a process starting at
    the same moment never reads half a key: it reads the one that was linked first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: its key is the one
        finally:
            tmp.unlink()
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e}") from e
