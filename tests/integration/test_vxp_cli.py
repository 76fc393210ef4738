"""``gateway tokens issue --vxp``: a façade secret printed once, kept encrypted under a key
file only its owner reads, listed and revocable."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import main
from gateway.db.engine import create_engine

UNIT = "000.00.05.H07"  # a pull unit of the sample province


def run(home: Path, *args: str) -> tuple[int, str, str]:
    env = {"GATEWAY_HOME": str(home), "GATEWAY_DATABASE_URL": "", "GATEWAY_AMQP_URL": ""}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def stored(home: Path) -> list[str]:
    engine = create_engine(f"sqlite+aiosqlite:///{home / 'ledger.db'}")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT secret_encrypted FROM gw_vxp_system"))
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


def test_a_facade_secret_is_shown_once_stored_encrypted_and_revocable(tmp_path: Path) -> None:
    home = tmp_path / "var"
    assert run(home, "db", "upgrade")[0] == 0
    code, out, err = run(home, "tokens", "issue", "--unit", UNIT, "--vxp")
    assert code == 0, err
    first, second = out.splitlines()
    assert first == f"systemId={UNIT}" and second.startswith("secret=")
    secret = second.removeprefix("secret=")
    assert len(secret) >= 40 and "not shown again" in err
    key = home / "vxp-secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    (encrypted,) = asyncio.run(stored(home))
    assert secret not in encrypted
    database = b"".join(p.read_bytes() for p in home.glob("ledger.db*"))  # with its WAL
    assert encrypted.encode() in database and secret.encode() not in database

    code, out, _ = run(home, "tokens", "issue", "--unit", UNIT, "--vxp", "--json")
    issued = json.loads(out)
    assert code == 0 and issued["systemId"] == UNIT and issued["secret"] != secret
    assert len(asyncio.run(stored(home))) == 1  # the new secret replaced the first

    assert f"{UNIT:<16} vxp      active" in run(home, "tokens", "list")[1]
    assert run(home, "tokens", "revoke", "--vxp", UNIT)[:2] == (
        0, "revoked 1 façade secret(s); refused from the next request\n"
    )  # fmt: skip
    assert run(home, "tokens", "revoke", "--vxp", UNIT)[0] == 1  # nothing left to revoke
    assert f"{UNIT:<16} vxp      revoked" in run(home, "tokens", "list")[1]


def test_a_facade_secret_is_for_a_unit_of_the_directory(tmp_path: Path) -> None:
    home = tmp_path / "var"
    assert run(home, "db", "upgrade")[0] == 0
    code, _, err = run(home, "tokens", "issue", "--unit", "000.00.99.H99", "--vxp")
    assert code == 2 and "not in the unit directory" in err
    code, _, err = run(home, "tokens", "issue", "--unit", UNIT, "--vxp", "--role", "operator")
    assert code == 2 and "--vxp secrets are for units" in err
