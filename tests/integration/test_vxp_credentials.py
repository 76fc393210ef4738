"""The façade's credentials on SQLite and PostgreSQL: a secret readable only with the key it
was encrypted under and only until revoked, and a signed request taken once, even when two
arrive at the same moment, then forgotten once outside the window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet

from gateway.db.engine import create_engine, write_transaction
from gateway.service import vxp_store
from gateway.service.vxp_secrets import Credentials, issue_secret, revoke_secret

SYSTEM = "000.00.06.H07"


async def test_a_secret_is_read_with_its_key_until_it_is_revoked(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        key = Fernet(Fernet.generate_key())
        issued = await issue_secret(engine, key, SYSTEM)
        credentials = Credentials(engine, key, 300)
        assert await credentials.secret_of(SYSTEM) == issued.secret
        other_key = Credentials(engine, Fernet(Fernet.generate_key()), 300)
        assert await other_key.secret_of(SYSTEM) is None
        assert await credentials.secret_of("000.00.07.H07") is None
        again = await issue_secret(engine, key, SYSTEM)
        assert await credentials.secret_of(SYSTEM) == again.secret != issued.secret
        assert await revoke_secret(engine, SYSTEM) == 1
        assert await credentials.secret_of(SYSTEM) is None
        assert await revoke_secret(engine, SYSTEM) == 0
    finally:
        await engine.dispose()


async def test_a_signed_request_is_taken_once_and_forgotten_after_the_window(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        credentials = Credentials(engine, Fernet(Fernet.generate_key()), 300)
        stamp, signature = "05122026T074825+0676", "ab" * 32
        taken = await asyncio.gather(
            *(credentials.first_time(SYSTEM, stamp, signature) for _ in range(4))
        )
        assert sorted(taken) == [False, False, False, True]
        assert await credentials.first_time(SYSTEM, stamp, "cd" * 32)  # another request
        assert await credentials.first_time("000.00.07.H07", stamp, signature)  # another system

        # A request seen more than two windows ago is forgotten at the next pruning.
        old = datetime.now(UTC) - timedelta(seconds=601)
        async with write_transaction(engine) as conn:
            assert await vxp_store.remember(conn, SYSTEM, "01012026T000000+0000", "ef" * 32, old)
        fresh = Credentials(engine, credentials.key, 300)  # has not pruned yet
        assert await fresh.first_time(SYSTEM, "01012026T000000+0000", "ef" * 32)
        assert not await fresh.first_time(SYSTEM, stamp, signature)  # inside the window: kept
    finally:
        await engine.dispose()
