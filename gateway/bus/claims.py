"""The claim-check store: bodies too large for a message live here once, content-addressed,
as files under ``<home>/claims`` that any process of the host can read.

A reference is ``sha256:<hex>``: storing the same body for many recipients writes it once, a
write is atomic (temporary file, fsync, rename), and a read checks the digest, so a torn or
altered file is an error instead of a wrong document.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

from gateway.errors import GatewayError

PREFIX = "sha256:"


class ClaimStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    @staticmethod
    def _digest(ref: str) -> str:
        digest = ref.removeprefix(PREFIX)
        if (
            not ref.startswith(PREFIX)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise GatewayError("not_found", f"{ref!r} is not a claim-check reference")
        return digest

    def put_sync(self, body: bytes) -> str:
        digest = hashlib.sha256(body).hexdigest()
        path = self._path(digest)
        if path.exists():
            os.utime(path)  # keeps it young for prune()
            return PREFIX + digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return PREFIX + digest

    def get_sync(self, ref: str) -> bytes:
        digest = self._digest(ref)
        try:
            body = self._path(digest).read_bytes()
        except FileNotFoundError as e:
            raise GatewayError("not_found", f"claim-check body {ref} is missing") from e
        if hashlib.sha256(body).hexdigest() != digest:
            raise GatewayError("not_found", f"claim-check body {ref} is damaged")
        return body

    async def put(self, body: bytes) -> str:
        return await asyncio.to_thread(self.put_sync, body)

    async def get(self, ref: str) -> bytes:
        return await asyncio.to_thread(self.get_sync, ref)

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Delete bodies not stored or re-stored for ``older_than`` seconds; return how many.

        Nothing calls this on its own: a body must outlive every delivery and dead letter that
        refers to it, which only the operator's retention policy can say.
        """
        limit = (time.time() if now is None else now) - older_than
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/*"):
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
