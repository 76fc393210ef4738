"""Who may do what, route by route: every cell of the role table in docs/api.md, asked of a
running gateway (the rules do not depend on the bus or the database, so the embedded stack
stands for both), and every route the gateway serves is in the table."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from consolekit import CSRF, Console
from gatewaystack import (
    NATIVE,
    OUTSIDER,
    PULL,
    PUSH,
    SENDER,
    Stack,
)

from gateway.api.app import build_app
from gateway.client import GatewayClient, build_letter, make_attachment, sign_as_unit, unit
from gateway.envelope import Organization

TABLE = Path(__file__).parents[2] / "docs" / "api.md"
ROLES = ("party", "other unit", "operator", "auditor")
SPARE_UNIT = "000.00.20.H07"
PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /v1/openapi.json",
}  # no token  # suspended and resumed by the operator's cells; no token uses it


def role_table(
    header: str = "| route | party | other unit | operator | auditor |",
    roles: tuple[str, ...] = ROLES,
) -> dict[str, dict[str, str]]:
    """route (as the table writes it) -> role -> the cell ("✓" or a status)."""
    text = TABLE.read_text(encoding="utf-8")
    start = text.index(header)
    rows: dict[str, dict[str, str]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for route in re.findall(r"`([A-Z]+ [^`]+)`", cells[0]):
            rows[route] = {
                role: cell.split()[0] for role, cell in zip(roles, cells[1:], strict=True)
            }
    return rows


CONSOLE_ROLES = ("operator", "auditor", "signed out")


def console_table() -> dict[str, dict[str, str]]:
    return role_table("| console route | operator | auditor | signed out |", CONSOLE_ROLES)


@dataclass
class Letter:
    data: bytes
    key: str
    delivery_id: str  # the pull unit's copy
    amqp_delivery_id: str  # the AMQP unit's copy


Call = tuple[str, str, dict[str, Any]]  # method, path and query, aiohttp request options


def calls(letter: Letter) -> dict[str, Callable[[], Call]]:
    """How each route of the table is asked (a valid request, so that only the role decides)."""
    key = quote(letter.key, safe="")
    xml = {"data": letter.data, "headers": {"Content-Type": "application/xml"}}
    return {
        "POST /v1/packages": lambda: ("POST", "/v1/packages", xml),
        "POST /v1/packages?profile=compat": lambda: ("POST", "/v1/packages?profile=compat", xml),
        "GET /v1/inbox?unit=CODE": lambda: ("GET", f"/v1/inbox?unit={PULL}", {}),
        "GET /v1/inbox/{delivery_id}": lambda: ("GET", f"/v1/inbox/{letter.delivery_id}", {}),
        "POST /v1/inbox/{delivery_id}/ack": lambda: (
            "POST",
            f"/v1/inbox/{letter.delivery_id}/ack",
            {"json": {"result": "done"}},
        ),
        "POST /v1/inbox/ack": lambda: (  # a failure: the copy stays for the other cells
            "POST",
            "/v1/inbox/ack",
            {"json": {"acks": [{"delivery_id": letter.delivery_id, "result": "fail"}]}},
        ),
        "GET /v1/deliveries/{delivery_id}/body": lambda: (
            "GET",
            f"/v1/deliveries/{letter.amqp_delivery_id}/body",
            {},
        ),
        "GET /v1/notices": lambda: ("GET", "/v1/notices", {}),
        "POST /v1/notices/ack": lambda: (
            "POST",
            "/v1/notices/ack",
            {"json": {"ids": ["n-000000000000000000000000"]}},
        ),
        "GET /v1/documents/{document_key}": lambda: ("GET", f"/v1/documents/{key}", {}),
        "GET /v1/ledger/receipts?document=KEY": lambda: (
            "GET",
            f"/v1/ledger/receipts?document={key}",
            {},
        ),
        "GET /v1/ledger/entries?unit=CODE": lambda: (
            "GET",
            f"/v1/ledger/entries?unit={SENDER}",
            {},
        ),
        "GET /v1/ledger/checkpoint": lambda: ("GET", "/v1/ledger/checkpoint", {}),
        "POST /v1/ledger/checkpoint": lambda: ("POST", "/v1/ledger/checkpoint", {}),
        "GET /v1/ledger/consistency?from=1&to=1": lambda: (
            "GET",
            "/v1/ledger/consistency?from=1&to=1",
            {},
        ),
        "POST /v1/ledger/cosignatures": lambda: (
            "POST",
            "/v1/ledger/cosignatures",
            {"json": {"checkpoint": "", "cosignature": ""}},
        ),
        "GET /v1/ledger/bundles/{document_key}": lambda: (
            "GET",
            f"/v1/ledger/bundles/{key}",
            {},
        ),
        "GET /v1/units": lambda: ("GET", "/v1/units", {}),
        "GET /v1/units/{code}": lambda: ("GET", f"/v1/units/{SENDER}", {}),
        "GET /v1/admin/backlog": lambda: ("GET", "/v1/admin/backlog", {}),
        "GET /v1/alerts": lambda: ("GET", "/v1/alerts", {}),
        "POST /v1/admin/redrive": lambda: (
            "POST",
            "/v1/admin/redrive",
            {"json": {"unit": PUSH, "all": True}},
        ),
        "GET /v1/admin/reload": lambda: ("GET", "/v1/admin/reload", {}),
        "POST /v1/admin/reload": lambda: ("POST", "/v1/admin/reload", {}),
        "POST /v1/admin/units": lambda: ("POST", "/v1/admin/units", {"json": {}}),
        "PATCH /v1/admin/units/{code}": lambda: (
            "PATCH",
            f"/v1/admin/units/{SPARE_UNIT}",
            {"json": {"name": "Ủy ban nhân dân huyện"}},
        ),
        "POST /v1/admin/units/{code}/suspend": lambda: (
            "POST",
            f"/v1/admin/units/{SPARE_UNIT}/suspend",
            {},
        ),
        "POST /v1/admin/units/{code}/resume": lambda: (
            "POST",
            f"/v1/admin/units/{SPARE_UNIT}/resume",
            {},
        ),
        "POST /v1/admin/tokens/{token_id}/revoke": lambda: (
            "POST",
            "/v1/admin/tokens/no-such-token/revoke",
            {},
        ),
        "GET /healthz": lambda: ("GET", "/healthz", {}),
        "GET /readyz": lambda: ("GET", "/readyz", {}),
        "GET /metrics": lambda: ("GET", "/metrics", {}),
        "GET /v1/openapi.json": lambda: ("GET", "/v1/openapi.json", {}),
    }


def token_of(stack: Stack, route: str, role: str) -> str:
    if role == "party":  # the copy's recipient for the inbox and delivery routes, else the sender
        if "/v1/deliveries" in route:
            return stack.tokens[NATIVE]
        return stack.tokens[PULL if "/v1/inbox" in route else SENDER]
    return stack.tokens[OUTSIDER if role == "other unit" else role]


async def send_letter(stack: Stack) -> Letter:
    to = [Organization(PULL, "Sở Tài chính"), Organization(NATIVE, "Phòng Nội vụ huyện")]
    scan = make_attachment("Tờ trình.pdf", "%PDF-1.4 tờ trình".encode())  # for the console
    letter = build_letter(unit(SENDER), to, "Về việc phân quyền", attachments=[scan])
    data = sign_as_unit(letter, stack.keys)
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        submitted = await gw.submit(data)
    copies = {r["code"]: r["delivery_id"] for r in submitted.answer["recipients"]}
    return Letter(data, submitted.document_key, copies[PULL], copies[NATIVE])


async def test_every_cell_of_the_role_table_holds(embedded: Stack) -> None:
    stack = embedded
    letter = await send_letter(stack)
    table, asks = role_table(), calls(letter)
    assert set(table) == set(asks)
    cells = [(route, role, table[route][role]) for route in table for role in ROLES]
    # The recipient's acknowledgement takes the copy out of its inbox: ask it last.
    ack = "POST /v1/inbox/{delivery_id}/ack"
    cells.sort(key=lambda cell: (cell[0], cell[1]) == (ack, "party"))
    wrong = []
    async with aiohttp.ClientSession() as session:
        for route, role, expected in cells:
            method, path, options = asks[route]()
            headers = {**options.pop("headers", {})}
            headers["Authorization"] = f"Bearer {token_of(stack, route, role)}"
            async with session.request(
                method, stack.url + path, headers=headers, **options
            ) as response:
                status = response.status
                await response.read()
            allowed = status not in (401, 403, 404)
            if (expected == "✓" and not allowed) or (expected != "✓" and str(status) != expected):
                wrong.append(f"{route} as {role}: {status}, the table says {expected}")
    assert wrong == []


def test_the_table_names_every_route_the_gateway_serves(embedded: Stack) -> None:
    served = {
        f"{route.method} {route.resource.canonical}"
        for route in build_app(embedded.runtime).router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    described = {route.split("?")[0] for route in [*role_table(), *console_table()]}
    assert served == described


def console_calls(letter: Letter, token: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """How each console route is asked: a valid request (its form with the session's CSRF
    secret), so that only the role decides."""
    key = quote(letter.key, safe="")
    return {
        "GET /login": ("GET", "/login", {}),
        "POST /login": ("POST", "/login", {"token": token}),
        "POST /lang": ("POST", "/lang", {"lang": "vi"}),
        "GET /": ("GET", "/", {}),
        "GET /documents": ("GET", "/documents?q=x", {}),
        "GET /documents/{key}": ("GET", f"/documents/{key}", {}),
        "GET /documents/{key}/attachments/{index}": ("GET", f"/documents/{key}/attachments/0", {}),
        "GET /dead": ("GET", "/dead", {}),
        "GET /units": ("GET", "/units", {}),
        "GET /ledger": ("GET", "/ledger", {}),
        "GET /ledger/export": ("GET", "/ledger/export?format=csv", {}),
        "GET /ledger/receipt": ("GET", "/ledger/receipt?seq=0", {}),
        "POST /ledger/verify": ("POST", "/ledger/verify", {}),
        "POST /dead/redrive": ("POST", "/dead/redrive", {"all": PUSH}),  # asks to confirm
        "POST /units": (
            "POST",
            "/units",
            {"code": "000.00.21.H07", "name": "Sở Công Thương", "level": "2", "delivery": "pull"},
        ),
        "POST /units/{code}/suspend": ("POST", f"/units/{SPARE_UNIT}/suspend", {}),
        "POST /units/{code}/resume": ("POST", f"/units/{SPARE_UNIT}/resume", {}),
        "POST /logout": ("POST", "/logout", {}),  # last: it ends the session
    }


async def test_every_cell_of_the_console_table_holds(embedded: Stack) -> None:
    letter = await send_letter(embedded)
    table = console_table()
    wrong = []
    for role in CONSOLE_ROLES:
        token = embedded.tokens["operator" if role == "signed out" else role]
        asks = console_calls(letter, token)
        assert set(asks) == set(table)
        async with Console(embedded.url) as console:
            if role == "signed out":
                await console.get("/login")  # a session without sign-in, for its CSRF secret
            else:
                await console.sign_in(token)
            for route, (method, path, form) in asks.items():
                if route == "POST /login" and role == "signed out":
                    continue  # it would sign in: asked last, below
                fields = [*form.items(), ("csrf", console.csrf)] if method == "POST" else None
                async with console.session.request(
                    method, embedded.url + path, data=fields, allow_redirects=False
                ) as response:
                    status, where = response.status, response.headers.get("Location")
                    text = await response.text()
                if found := CSRF.search(text):
                    console.csrf = found.group(1)
                elif status == 303 and where:
                    await console.get(where)  # the page a browser goes on to: its CSRF secret
                public = table[route]["signed out"] == "✓"
                got = "303" if status == 303 and where == "/login" and not public else "✓"
                if status >= 400:
                    got = str(status)
                if got != table[route][role]:
                    wrong.append(f"{route} {role}: {status} {where or ''}")
            if role == "signed out":
                status, _ = await console.post("/login", {"token": token})
                if status != 200:
                    wrong.append(f"POST /login signed out: {status}")
    assert wrong == []


async def test_no_route_answers_a_token_that_is_missing_malformed_unknown_revoked_or_expired(
    embedded: Stack,
) -> None:
    from gateway.service.tokens import Role, issue_token, revoke_tokens

    engine = embedded.runtime.ledger.engine
    revoked = await issue_token(engine, SENDER, Role.UNIT)
    await revoke_tokens(engine, token_id=revoked.token_id)
    expired = await issue_token(engine, SENDER, Role.UNIT, days=-1)
    states = {
        "none": None,
        "not bearer": f"Basic {embedded.tokens[SENDER]}",
        "empty": "Bearer ",
        "malformed": "Bearer not-a-token",
        "unknown": "Bearer gw_000000000000_" + "x" * 43,
        "revoked": f"Bearer {revoked.token}",
        "expired": f"Bearer {expired.token}",
    }
    letter = await send_letter(embedded)
    asks = calls(letter)
    wrong = []
    async with aiohttp.ClientSession() as session:
        for route in role_table():
            if route in PUBLIC:
                continue
            for state, authorization in states.items():
                method, path, options = asks[route]()
                headers = {**options.pop("headers", {})}
                if authorization is not None:
                    headers["Authorization"] = authorization
                async with session.request(
                    method, embedded.url + path, headers=headers, **options
                ) as response:
                    if response.status != 401:
                        wrong.append(f"{route} with a {state} token: {response.status}")
    assert wrong == []
