"""Wake-ups between processes through PostgreSQL's NOTIFY (two Wakeups with engines of their
own stand for two gateway processes), and the payloads that carry them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.db import wakeups as wakeups_module
from gateway.db.engine import create_engine
from gateway.db.wakeups import PAYLOAD_BYTES, Wakeups, chunks


def test_topics_are_split_into_payloads_postgresql_accepts() -> None:
    topics = [f"inbox/000.{n // 100:02d}.{n % 100:02d}.H07" for n in range(801)]
    payloads = chunks("1234.abc", topics)
    assert len(payloads) > 1 and all(len(p.encode()) <= PAYLOAD_BYTES for p in payloads)
    assert all(p.split()[0] == "1234.abc" for p in payloads)
    assert sorted(t for p in payloads for t in p.split()[1:]) == sorted(topics)
    assert chunks("1234.abc", []) == []


@pytest.mark.postgres
async def test_a_change_in_one_process_wakes_the_waiters_of_another(database_url: str) -> None:
    one, other = create_engine(database_url), create_engine(database_url)
    here, there = Wakeups(one), Wakeups(other)
    await here.start()
    await there.start()
    try:
        # the listener has started when its first connection wakes every waiter
        with there.watch("inbox/ready") as ready:
            assert await ready.wait(10)
        province = [f"inbox/u{n:03d}" for n in range(801)]  # more than one notification
        with there.watch("inbox/u800") as last, there.watch("inbox/u000") as first:
            with here.watch("inbox/u000") as own:
                here.changed(province)
                await asyncio.wait_for(own.wait(3600), 1)  # this process's own: at once
                await asyncio.wait_for(last.wait(3600), 10)
                await asyncio.wait_for(first.wait(3600), 10)
            with there.watch("inbox/unrelated") as unrelated:
                here.changed(["inbox/u001"])
                assert not await unrelated.wait(0.5)
    finally:
        here.close()
        there.close()
        await one.dispose()
        await other.dispose()


async def test_without_postgresql_waiters_look_again_every_second(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    wakeups = Wakeups(engine)
    await wakeups.start()  # nothing to listen to
    assert wakeups.recheck == 1.0
    with wakeups.watch("inbox/x") as watch:
        wakeups.changed(["inbox/x"])
        await asyncio.wait_for(watch.wait(3600), 1)
    wakeups.close()
    with wakeups.watch("inbox/x") as watch:  # once stopping, a new waiter is answered at once
        await asyncio.wait_for(watch.wait(3600), 1)
    await engine.dispose()


async def test_a_database_that_cannot_be_reached_is_said_once_while_it_lasts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wakeups_module, "RECONNECT_SECONDS", 0.02)
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    wakeups = Wakeups(engine)
    with caplog.at_level(logging.WARNING, logger="gateway.db.wakeups"):
        await wakeups.start()
        await asyncio.sleep(0.5)  # many attempts
        wakeups.close()
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.db.wakeups"]
    assert len(said) == 1 and said[0].startswith("cannot listen for wake-ups (")
    await engine.dispose()
