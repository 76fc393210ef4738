"""The claim-check store: content-addressed, stored once, checked on read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.bus.claims import ClaimStore
from gateway.errors import GatewayError


async def test_a_body_is_stored_once_and_read_back(tmp_path: Path) -> None:
    store = ClaimStore(tmp_path)
    body = os.urandom(3 * 1024 * 1024)
    ref = await store.put(body)
    assert ref == await store.put(body)
    assert ref.startswith("sha256:")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / ref[7:9] / ref[7:]]
    assert await store.get(ref) == body


async def test_a_damaged_or_missing_body_is_an_error(tmp_path: Path) -> None:
    store = ClaimStore(tmp_path)
    ref = await store.put(b"letter")
    (tmp_path / ref[7:9] / ref[7:]).write_bytes(b"lettes")
    with pytest.raises(GatewayError, match="damaged"):
        await store.get(ref)
    with pytest.raises(GatewayError, match="missing"):
        await store.get("sha256:" + "0" * 64)
    with pytest.raises(GatewayError, match="not a claim-check reference"):
        await store.get("sha256:../../etc/passwd")


def test_prune_removes_only_old_bodies(tmp_path: Path) -> None:
    store = ClaimStore(tmp_path)
    old = store.put_sync(b"old")
    new = store.put_sync(b"new")
    path = tmp_path / old[7:9] / old[7:]
    os.utime(path, (1000, 1000))
    assert store.prune(older_than=3600) == 1
    assert store.get_sync(new) == b"new"
    assert ClaimStore(tmp_path / "none").prune(1) == 0
