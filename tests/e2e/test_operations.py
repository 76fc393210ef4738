"""Running the gateway day to day, on the embedded stack and on RabbitMQ + PostgreSQL: a
revoked certificate, a new or suspended unit and a revoked token take effect without a restart;
a reload that fails changes nothing and says why; every operator action is in the ledger with
the operator's token."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result
from gatewaystack import OUTSIDER, PULL, PUSH, SENDER, Stack
from test_exchange import client, eventually, letter

from gateway.cli import main
from gateway.client import ApiError, build_letter, sign_as_unit, unit
from gateway.directory import load_directory
from gateway.service.tokens import Role, issue_token, revoke_tokens
from gateway.trust import issue_unit, revoke_unit

NEW = "000.00.30.H07"  # a unit the directory does not have yet
TOP = "000.00.00.H07"


def token_id(token: str) -> str:
    return token.split("_")[1]


async def operator_events(stack: Stack, action: str) -> list[dict[str, Any]]:
    async with client(stack, "auditor") as gw:
        page = await gw.entries(event="operator", limit="500")
    return [e for e in page["entries"] if e["code"] == action]


async def refused_with(stack: Stack, who: str, data: bytes) -> str | None:
    """The code a submission is refused with, or None when it is accepted."""
    async with client(stack, who) as gw:
        try:
            await gw.submit(data)
        except ApiError as e:
            return e.code
    return None


def directory_path(stack: Stack) -> Path:
    path = stack.runtime.reloader.sources.directory
    assert path.exists()
    return path


async def test_a_certificate_revoked_on_disk_is_refused_without_a_restart(stack: Stack) -> None:
    assert await refused_with(stack, SENDER, letter(stack, PULL, number="1")) is None
    revoke_unit(stack.keys, SENDER)  # what `gateway keys revoke` does: a new CRL on disk

    async def refused() -> str | None:
        code = await refused_with(stack, SENDER, letter(stack, PULL, number="2"))
        return code if code == "cert_revoked" else None

    assert await eventually(refused, timeout=10) == "cert_revoked"
    (reload,) = [e for e in await operator_events(stack, "reload") if e["details"]["ok"]]
    assert reload["details"]["trigger"] == "file" and reload["details"]["files_changed"] == ["crl"]
    assert reload["details"]["actor"] == "gateway" and reload["details"]["role"] == "system"


async def test_a_unit_is_added_used_suspended_and_resumed_without_a_restart(
    stack: Stack,
) -> None:
    operator = stack.tokens["operator"]
    async with client(stack, "operator") as gw:
        added = await gw.add_unit(
            NEW,
            {"name": "Sở Du lịch", "parent_code": TOP, "level": "2", "delivery": "pull"},
        )
    assert added["unit"]["status"] == "active" and added["reload"]["added"] == [NEW]
    assert NEW in directory_path(stack).read_text(encoding="utf-8")

    issue_unit(stack.keys, load_directory(directory_path(stack)), NEW)  # `gateway keys issue`
    stack.tokens[NEW] = (await issue_token(stack.runtime.ledger.engine, NEW, Role.UNIT)).token
    async with client(stack, SENDER) as gw:
        key = (await gw.submit(letter(stack, NEW, number="10"))).document_key
    async with client(stack, NEW) as gw:
        (item,) = (await gw.inbox())["items"]
        assert item["document_key"] == key
    from_new = build_letter(unit(NEW, load_directory(directory_path(stack))), [unit(PULL)], "Thư")
    assert await refused_with(stack, NEW, sign_as_unit(from_new, stack.keys)) is None

    async with client(stack, "operator") as gw:
        suspended = await gw.set_unit_active(NEW, False)
    assert suspended["changed"] == {"status": "suspended"}
    refused = await refused_with(stack, SENDER, letter(stack, NEW, number="11"))
    assert refused == "recipient_suspended"

    async with client(stack, "operator") as gw:
        await gw.set_unit_active(NEW, True)
    assert await refused_with(stack, SENDER, letter(stack, NEW, number="12")) is None

    for action in ("unit_add", "unit_suspend", "unit_resume"):
        (event,) = await operator_events(stack, action)
        details = event["details"]
        assert (details["actor"], details["role"], details["unit"]) == (
            token_id(operator),
            "operator",
            NEW,
        )
    reloads = await operator_events(stack, "reload")
    assert [e["details"]["trigger"] for e in reloads].count("api") >= 3


async def test_unit_changes_are_checked_like_the_directory_file(stack: Stack) -> None:
    before = directory_path(stack).read_bytes()
    pull = {"name": "Sở mới", "parent_code": TOP, "level": "2", "delivery": "pull"}
    cases: list[tuple[str, Any, int, str]] = [
        ("bad parent", lambda gw: gw.add_unit(NEW, pull | {"parent_code": "999.99.99.H99"}), 422,
         "unit_invalid"),
        ("level above its parent", lambda gw: gw.add_unit(NEW, pull | {"level": "1"}), 422,
         "unit_invalid"),
        ("push without endpoint", lambda gw: gw.add_unit(NEW, pull | {"delivery": "push"}), 422,
         "unit_invalid"),
        ("malformed code", lambda gw: gw.add_unit("NEW", pull), 422, "unit_invalid"),
        ("already there", lambda gw: gw.add_unit(PULL, pull), 409, "unit_exists"),
        ("unknown unit", lambda gw: gw.update_unit(NEW, {"name": "x"}), 404, "not_found"),
        ("unknown field", lambda gw: gw.update_unit(PULL, {"colour": "x"}), 400, "bad_request"),
    ]  # fmt: skip
    for name, call, status, code in cases:
        async with client(stack, "operator") as gw:
            with pytest.raises(ApiError) as caught:
                await call(gw)
        assert (caught.value.status, caught.value.code) == (status, code), name
    async with client(stack, SENDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.set_unit_active(PULL, False)
    assert caught.value.code == "forbidden"
    assert directory_path(stack).read_bytes() == before
    assert await operator_events(stack, "unit_add") == []


async def test_a_reload_that_fails_keeps_the_old_state_and_says_why(stack: Stack) -> None:
    path = directory_path(stack)
    good = path.read_text(encoding="utf-8")
    path.write_text(good + f"{NEW},Sở lỗi,{TOP},9,pull,,active\n", encoding="utf-8")
    async with client(stack, "operator") as gw:
        with pytest.raises(ApiError) as caught:
            await gw.reload()
    assert (caught.value.status, caught.value.code) == (422, "reload_refused")
    assert "bad level '9'" in caught.value.detail
    assert caught.value.problem["reload"]["ok"] is False

    assert await refused_with(stack, SENDER, letter(stack, PULL, number="20")) is None
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {stack.tokens['operator']}"}
        async with session.get(stack.url + "/v1/admin/reload", headers=headers) as response:
            state = await response.json()
        async with session.get(stack.url + "/metrics") as response:
            metrics = await response.text()
    assert state["last"]["ok"] is False and state["counts"]["failed"] >= 1
    assert 'gateway_reloads_total{result="failed"}' in metrics
    failed = [e for e in await operator_events(stack, "reload") if not e["details"]["ok"]]
    assert failed and "bad level" in failed[0]["details"]["error"]

    path.write_text(good, encoding="utf-8")  # put right: the watcher reloads by itself

    async def reloaded() -> bool:
        last = stack.runtime.reloader.last
        return last is not None and last.ok

    await eventually(reloaded, timeout=10)


async def test_a_revoked_token_is_refused_at_once_here_and_within_the_cache_elsewhere(
    stack: Stack,
) -> None:
    checker = stack.runtime.tokens
    checker.cache_seconds = 1  # GATEWAY_API_TOKEN_CACHE=1
    async with client(stack, OUTSIDER) as gw:
        await gw.inbox()  # known, and remembered
    async with client(stack, "operator") as gw:
        assert await gw.revoke_token(token_id(stack.tokens[OUTSIDER])) == 1
    async with client(stack, OUTSIDER) as gw:
        with pytest.raises(ApiError) as caught:
            await gw.inbox()
    assert caught.value.code == "unauthenticated"  # at once, in the process that revoked it
    (event,) = await operator_events(stack, "token_revoke")
    assert event["details"]["token_id"] == token_id(stack.tokens[OUTSIDER])

    async with client(stack, PULL) as gw:
        await gw.inbox()
    # Revoked by another process (the CLI): this one does not hear of it...
    assert await revoke_tokens(stack.runtime.ledger.engine, token_id=token_id(stack.tokens[PULL]))
    started = asyncio.get_running_loop().time()

    async def refused() -> bool:
        async with client(stack, PULL) as gw:
            try:
                await gw.inbox()
            except ApiError as e:
                return e.code == "unauthenticated"
        return False

    await eventually(refused, timeout=5)
    # ...and refuses it once its memory of the token is older than the bound.
    assert asyncio.get_running_loop().time() - started <= checker.cache_seconds + 0.5


async def test_a_redrive_through_the_gateway_names_its_operator(stack: Stack) -> None:
    async with client(stack, "operator") as gw:
        assert await gw.redrive(PULL) == 0
    (event,) = await operator_events(stack, "redrive")
    assert event["details"] == {
        "actor": token_id(stack.tokens["operator"]),
        "role": "operator",
        "unit": PULL,
        "redriven": 0,
    }


def cli(stack: Stack, *args: str) -> Result:
    """A command run as an operator would, against this stack's configuration."""
    env = {
        "GATEWAY_HOME": str(stack.runtime.settings.home),
        "GATEWAY_DIRECTORY": str(directory_path(stack)),
        "GATEWAY_KEYS": str(stack.keys),
        "GATEWAY_BUS_NAMESPACE": stack.namespace,
        "GATEWAY_AMQP_URL": stack.amqp_url or "",
        "GATEWAY_DATABASE_URL": (
            stack.runtime.settings.database_url.reveal()
            if stack.runtime.settings.database_url
            else ""
        ),
    }
    return CliRunner().invoke(main, list(args), env=env)


async def test_commands_act_through_the_running_gateway_and_not_behind_its_back(
    stack: Stack,
) -> None:
    operator = stack.tokens["operator"]
    done = await asyncio.to_thread(
        cli, stack, "units", "suspend", OUTSIDER, "--url", stack.url, "--token", operator
    )
    assert done.exit_code == 0, done.output
    assert f"{OUTSIDER}: suspend (status='suspended')" in done.output
    refused = await refused_with(stack, SENDER, letter(stack, OUTSIDER, number="30"))
    assert refused == "recipient_suspended"

    behind = await asyncio.to_thread(cli, stack, "bus", "redrive", PULL, "--all")
    assert behind.exit_code == 2
    assert "a gateway is running on this database" in behind.output
    assert "gateway admin redrive" in behind.output

    through = await asyncio.to_thread(
        cli, stack, "admin", "redrive", PULL, "--all", "--url", stack.url, "--token", operator
    )
    assert through.exit_code == 1 and "redrove 0 copies" in through.output  # nothing was dead
    reloaded = await asyncio.to_thread(
        cli, stack, "admin", "reload", "--url", stack.url, "--token", operator, "--json"
    )
    assert reloaded.exit_code == 0 and '"ok": true' in reloaded.output


async def test_a_letter_to_a_unit_added_by_another_worker_waits_for_no_restart(
    stack: Stack,
) -> None:
    """Another process (a second worker, or `gateway units add` on the file) changes the
    directory; this gateway notices the file within its watch interval."""
    done = await asyncio.to_thread(
        cli,
        stack,
        "units",
        "add",
        NEW,
        "--name",
        "Sở Du lịch",
        "--parent",
        TOP,
        "--level",
        "2",
        "--delivery",
        "pull",
    )
    assert done.exit_code == 0, done.output
    to_new = letter(stack, NEW, number="40")

    async def accepted() -> bool:
        return await refused_with(stack, SENDER, to_new) is None

    await eventually(accepted, timeout=10)
    (event,) = await operator_events(stack, "unit_add")
    assert event["details"]["actor"].startswith("cli:")
    assert event["details"]["fields"]["name"] == "Sở Du lịch"


async def test_the_backlog_of_a_pull_and_a_push_unit_in_the_api_the_metrics_and_the_cli(
    stack: Stack,
) -> None:
    stack.webhook.status = 503  # the push unit's system is down
    async with client(stack, SENDER) as gw:
        for n in (50, 51):
            await gw.submit(letter(stack, PULL, PUSH, number=str(n)))

    async def push_failing() -> dict[str, Any] | None:
        async with client(stack, "operator") as gw:
            view = await gw.backlog()
        rows = {r["unit"]: r for r in view["units"]}
        if PUSH in rows and rows[PUSH]["last_failure"] and rows[PUSH]["retrying"] == 2:
            return view
        return None

    view = await eventually(push_failing)
    rows = {r["unit"]: r for r in view["units"]}
    assert (rows[PULL]["waiting"], rows[PULL]["retrying"], rows[PULL]["dead"]) == (2, 0, 0)
    assert rows[PULL]["oldest_waiting_seconds"] >= 0 and rows[PULL]["delivery"] == "pull"
    assert rows[PUSH]["waiting"] == 2 and "answered 503" in rows[PUSH]["last_failure"]["reason"]
    assert view["totals"]["waiting"] == 4 and view["totals"]["units"] == 2

    async with aiohttp.ClientSession() as session, session.get(stack.url + "/metrics") as r:
        metrics = await r.text()
    assert f'gateway_unit_copies{{state="waiting",unit="{PULL}"}} 2.0' in metrics
    assert f'gateway_unit_oldest_waiting_seconds{{unit="{PULL}"}}' in metrics
    assert f'gateway_push_failures_total{{unit="{PUSH}"}}' in metrics
    assert "gateway_ledger_entries " in metrics and "process_resident_memory_bytes" in metrics

    async with client(stack, PULL) as gw:
        first = (await gw.inbox())["items"][0]
        await gw.ack(first["delivery_id"])
    async with client(stack, "auditor") as gw:
        one = await gw.backlog(PULL)
    assert [(r["unit"], r["waiting"]) for r in one["units"]] == [(PULL, 1)]

    shown = await asyncio.to_thread(
        cli, stack, "backlog", "--url", stack.url, "--token", stack.tokens["operator"]
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].split()[:6] == ["UNIT", "WAITING", "OLDEST", "RETRYING", "EXPIRED", "DEAD"]
    push_line = next(line for line in lines if line.startswith(PUSH))
    assert push_line.split()[1:2] == ["2"] and "failing:" in push_line
    assert lines[-1].startswith("total (2 units)")


async def test_a_problem_answer_names_the_request_for_the_logs(stack: Stack) -> None:
    headers = {"Authorization": "Bearer gw_nope_nope", "X-Request-Id": "ticket-1234"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.url + "/v1/inbox", headers=headers) as response,
    ):
        problem = await response.json(content_type=None)
        assert response.headers["X-Request-Id"] == "ticket-1234"
    assert problem["request_id"] == "ticket-1234" and problem["code"] == "unauthenticated"
    headers["X-Request-Id"] = "not a sane id; " * 10  # replaced by one of the gateway's own
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.url + "/healthz", headers=headers) as response,
    ):
        assert len(response.headers["X-Request-Id"]) == 16


async def test_an_auditor_works_over_http_alone(stack: Stack, tmp_path: Path) -> None:
    """Checkpoints, consistency and queries with an auditor token and the gateway's public
    key: no database access."""
    auditor = stack.tokens["auditor"]
    over_http = ("--url", stack.url, "--token", auditor)
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    async with client(stack, SENDER) as gw:
        await gw.submit(letter(stack, PULL, number="60"))
    done = await asyncio.to_thread(cli, stack, "audit", "checkpoint", "--fresh", *over_http,
                                   "-o", str(old))  # fmt: skip
    assert done.exit_code == 0, done.output
    async with client(stack, SENDER) as gw:
        await gw.submit(letter(stack, PULL, number="61"))
    too_soon = await asyncio.to_thread(cli, stack, "audit", "checkpoint", "--fresh", *over_http)
    assert too_soon.exit_code == 1 and "429 rate_limited" in too_soon.output
    await stack.runtime.ledger.checkpoint()  # what the checkpointer does every minute
    done = await asyncio.to_thread(cli, stack, "audit", "checkpoint", *over_http, "-o", str(new))
    assert done.exit_code == 0 and new.read_text().startswith("gateway.test/ledger\n")

    key = str(stack.keys / "gateway" / "cert.pem")
    proved = await asyncio.to_thread(
        cli, stack, "audit", "consistency", str(old), str(new), "--key", key, *over_http
    )
    assert proved.exit_code == 0, proved.output
    assert proved.output.startswith("OK consistent: gateway.test/ledger grew from")

    listed = await asyncio.to_thread(
        cli, stack, "audit", "query", "--event", "submitted", "--format", "csv", "--all",
        *over_http,
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines()[1:] if line]
    assert len(rows) == 2 and all(",submitted," in row for row in rows)
