"""The console without a browser: sign-in and its cookie, CSRF on every form, who may see and
do what, the search, the document timeline, the exports and the alerts, on the embedded stack
(the console reads through the same service functions on either database; its own queries,
the search and the overview's counts, run on both)."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from consolekit import Console
from gatewaystack import OUTSIDER, PULL, PUSH, SENDER, Stack

from gateway.client import (
    ApiError,
    GatewayClient,
    build_letter,
    make_attachment,
    sign_as_unit,
    unit,
)
from gateway.console.text import LOCAL
from gateway.envelope import Organization
from gateway.ledger import verify_receipt
from gateway.ledger.keys import load_gateway_public_key


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.1)
    return result


async def send(stack: Stack, subject: str, *to: str, **options: Any) -> str:
    data = sign_as_unit(
        build_letter(
            unit(SENDER), [Organization(c, f"Đơn vị {c}") for c in to], subject, **options
        ),
        stack.keys,
    )
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        return (await gw.submit(data)).document_key


async def test_sign_in_sets_an_http_only_strict_cookie_that_does_not_show_the_token(
    embedded: Stack,
) -> None:
    async with Console(embedded.url) as console:
        status, _ = await console.get("/")
        assert status == 200 and "/login" in _  # sent to sign in
        status, page = await console.sign_in(embedded.tokens["operator"])
        assert status == 200 and 'id="role"' in page
        cookie = console.cookie()
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert embedded.tokens["operator"] not in cookie.value
        assert not cookie["secure"]  # plain HTTP here; over HTTPS the cookie is Secure


async def test_sign_in_refuses_a_bad_token_a_unit_token_and_a_missing_csrf(
    embedded: Stack,
) -> None:
    async with Console(embedded.url) as console:
        await console.get("/login")
        status, _ = await console.post("/login", {"token": embedded.tokens["operator"]}, False)
        assert status == 403
        status, page = await console.sign_in("gw_000000000000_" + "x" * 43)
        assert status == 401 and 'id="error"' in page
        status, page = await console.sign_in(embedded.tokens[SENDER])
        assert status == 403 and 'id="error"' in page
        status, page = await console.get("/")
        assert status == 200 and 'name="token"' in page  # still not signed in


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "application/x-www-form-urlencoded; charset=no-such-charset"],
)
async def test_a_form_that_cannot_be_read_is_refused_with_a_page(
    embedded: Stack, content_type: str
) -> None:
    async with Console(embedded.url) as console:
        await console.get("/login")
        body = f"token=x&csrf={console.csrf}"
        for path in ("/login", "/logout", "/lang"):
            async with console.session.post(
                embedded.url + path, data=body, headers={"Content-Type": content_type}
            ) as r:
                page = await r.text()
            assert r.status == 400, path
            assert "Không đọc được biểu mẫu" in unicodedata.normalize("NFC", page), path


async def test_every_form_needs_the_session_s_csrf_secret(embedded: Stack) -> None:
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["operator"])
        await console.get("/units")
        forms = [
            ("/units/000.00.20.H07/suspend", {}),
            ("/units", {"code": "000.00.21.H07", "name": "X", "level": "2", "delivery": "pull"}),
            ("/dead/redrive", {"all": PUSH, "confirm": "1"}),
            ("/ledger/verify", {}),
            ("/lang", {"lang": "en"}),
            ("/logout", {}),
        ]
        for path, form in forms:
            status, _ = await console.post(path, {**form, "csrf": "forged"}, csrf=False)
            assert status == 403, path
        directory = embedded.runtime.gateway.directory
        assert directory.get("000.00.20.H07").active  # type: ignore[union-attr]
        assert "000.00.21.H07" not in directory


async def test_an_auditor_sees_every_page_without_action_buttons_and_cannot_post(
    embedded: Stack,
) -> None:
    key = await send(embedded, "Về việc kiểm toán", PULL)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])
        for path in ("/", "/documents", f"/documents/{quote(key, safe='')}", "/dead", "/units",
                     "/ledger"):  # fmt: skip
            status, page = await console.get(path)
            assert status == 200, path
            for action in ("/dead/redrive", "/suspend", 'method="post" action="/units"'):
                assert action not in page, (path, action)
        for path, form in [
            ("/dead/redrive", {"all": PUSH, "confirm": "1"}),
            ("/units/000.00.20.H07/suspend", {}),
            ("/units", {"code": "000.00.21.H07", "name": "X", "level": "2"}),
        ]:
            status, _ = await console.post(path, form)
            assert status == 403, path
        assert embedded.runtime.gateway.directory.get("000.00.20.H07").active  # type: ignore[union-attr]
        # verifying the ledger changes nothing: an auditor may
        status, page = await console.post("/ledger/verify", {})
        assert status == 200 and 'id="verify-result"' in page


async def test_operator_suspends_and_resumes_a_unit_ledgered_with_its_token(
    embedded: Stack,
) -> None:
    spare = "000.00.20.H07"
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["operator"])
        await console.get("/units")
        status, page = await console.post(f"/units/{spare}/suspend", {})
        assert status == 200 and 'id="done"' in page
        assert not embedded.runtime.gateway.directory.get(spare).active  # type: ignore[union-attr]
        status, page = await console.post(f"/units/{spare}/resume", {})
        assert embedded.runtime.gateway.directory.get(spare).active  # type: ignore[union-attr]
        status, page = await console.post(
            "/units",
            {"code": "000.00.21.H07", "name": "Sở Công Thương", "parent_code": "000.00.00.H07",
             "level": "2", "delivery": "pull"},
        )  # fmt: skip
        assert status == 200 and "000.00.21.H07" in embedded.runtime.gateway.directory
    async with GatewayClient(embedded.url, embedded.tokens["auditor"]) as gw:
        page = await gw.entries(event="operator")
    actions = [(e["code"], e["details"]["role"]) for e in page["entries"]]
    assert [a for a in actions if a[0].startswith("unit_")] == [
        ("unit_suspend", "operator"),
        ("unit_resume", "operator"),
        ("unit_add", "operator"),
    ]
    operator_id = embedded.tokens["operator"].split("_")[1]
    assert all(e["details"]["actor"] == operator_id for e in page["entries"])


async def test_search_finds_by_document_id_subject_sender_recipient_and_state_and_pages(
    stack: Stack,
) -> None:
    embedded = stack  # both databases: the search is SQL of its own
    first = await send(embedded, "Kế hoạch phòng chống lụt bão năm 2026", PULL)
    second = await send(embedded, "Báo cáo tài chính quý IV", PULL, OUTSIDER)
    for n in range(3):
        await send(embedded, f"Thông báo số {n}", OUTSIDER)
    document_id = second.split("|", 1)[1]
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])

        async def found(**query: str) -> str:
            status, page = await console.get("/documents", params=query)
            assert status == 200, page
            return page

        page = await found(q="KẾ HOẠCH phòng" if stack.kind != "embedded" else "kế hoạch phòng")
        assert "Kế hoạch phòng chống lụt bão" in page and "tài chính" not in page
        page = await found(q=unicodedata.normalize("NFD", "lụt bão"))  # typed decomposed
        assert "Kế hoạch phòng chống lụt bão" in page
        page = await found(q=document_id)
        assert "Báo cáo tài chính quý IV" in page and "lụt bão" not in page
        page = await found(q=document_id.rsplit(",", 1)[1])  # its number and notation alone
        assert "Báo cáo tài chính quý IV" in page and "lụt bão" not in page
        page = await found(recipient=PULL)
        assert "lụt bão" in page and "tài chính" in page and "Thông báo" not in page
        page = await found(sender=SENDER, state="queued")
        assert "lụt bão" in page  # the pull unit's copy waits in its inbox
        assert "lụt bão" not in await found(sender=OUTSIDER)
        page = await found(since="2000-01-01", until="2000-01-02")
        assert "lụt bão" not in page and "Thông báo" not in page
        today = datetime.now(LOCAL).strftime("%Y-%m-%d")  # the range bounds the walk
        page = await found(since=today, until=today)
        assert "lụt bão" in page and "Thông báo số 2" in page
        assert "lụt bão" not in await found(since="2999-01-01")
        # a recipient's documents along its own entries, paged after the entry walked
        page = await found(recipient=PULL, state="queued", limit="1")
        assert "tài chính" in page and "lụt bão" not in page
        following = re.search(r'href="(/documents\?[^"]+)" id="next"', page)
        assert following is not None
        _, page = await console.get(html.unescape(following.group(1)))
        assert "lụt bão" in page and "tài chính" not in page
        assert f'href="/documents/{quote(first, safe="")}"' in await found(q="lụt bão")
        # newest first, two a page, the next page after the last one's ledger entry
        page = await found(sender=SENDER, limit="2")
        assert "Thông báo số 2" in page and "Thông báo số 1" in page and "tài chính" not in page
        following = re.search(r'href="(/documents\?[^"]+)" id="next"', page)
        assert following is not None
        _, page = await console.get(html.unescape(following.group(1)))
        assert "Thông báo số 0" in page and "tài chính" in page and "số 1" not in page


async def test_a_subject_with_markup_is_shown_as_text(embedded: Stack) -> None:
    key = await send(embedded, "<script>alert('x')</script> Về việc", PULL)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["operator"])
        for path in ("/documents", f"/documents/{quote(key, safe='')}"):
            status, page = await console.get(path)
            assert status == 200
            assert "<script>" not in page and "&lt;script&gt;" in page


async def test_attachments_are_listed_for_both_and_downloaded_by_operators_only(
    embedded: Stack,
) -> None:
    scan = make_attachment("Công văn số 12.pdf", b"%PDF-1.4 " + bytes(range(256)))
    key = await send(embedded, "Về việc gửi hồ sơ", PULL, attachments=[scan])
    path = f"/documents/{quote(key, safe='')}"
    for role in ("operator", "auditor"):
        async with Console(embedded.url) as console:
            await console.sign_in(embedded.tokens[role])
            _, page = await console.get(path)
            assert "Công văn số 12.pdf" in page and scan.sha256 in page
            assert (f"{path}/attachments/0" in page) == (role == "operator")
            async with console.session.get(embedded.url + path + "/attachments/0") as response:
                body = await response.read()
                if role == "operator":
                    assert response.status == 200 and body == scan.data
                    assert response.content_type == "application/octet-stream"
                    assert response.headers["Content-Disposition"].startswith("attachment;")
                else:
                    assert response.status == 403


async def test_the_document_page_shows_each_recipient_s_timeline_and_its_receipts_verify(
    embedded: Stack,
) -> None:
    key = await send(embedded, "Về việc cấp phép", PULL)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["operator"])
        status, page = await console.get(f"/documents/{quote(key, safe='')}")
        assert status == 200 and f'id="r-{PULL}"' in page and "queued" in page
        status, text = await console.get(
            "/ledger/receipt", params={"document": key, "recipient": PULL}
        )
        assert status == 200
    verified = verify_receipt(json.loads(text), load_gateway_public_key(embedded.keys))
    assert {e.event.type.value for e in verified.entries} >= {"submitted", "queued"}


async def test_the_ledger_exports_an_audit_query_as_csv_and_json(embedded: Stack) -> None:
    key = await send(embedded, "Về việc xuất dữ liệu", PULL)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])
        async with console.session.get(
            embedded.url + "/ledger/export", params={"document": key, "format": "csv"}
        ) as response:
            assert response.status == 200 and response.content_type == "text/csv"
            assert "attachment" in response.headers["Content-Disposition"]
            rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert [r["type"] for r in rows] == ["submitted", "queued"]
        status, text = await console.get(
            "/ledger/export", params={"document": key, "format": "json", "limit": "1"}
        )
        exported = json.loads(text)
        assert status == 200 and [e["type"] for e in exported["entries"]] == ["submitted"]
        assert exported["next"] is not None


async def test_the_language_is_vietnamese_until_switched_and_the_switch_is_remembered(
    embedded: Stack,
) -> None:
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])
        _, page = await console.get("/units")
        assert "Đơn vị" in page and "Units (" not in page
        status, page = await console.post("/lang", {"lang": "en", "back": "/units"})
        assert status == 200 and "Units (" in page
        _, page = await console.get("/")
        assert "Overview" in page and "Tổng quan" not in page
        # back to a page of the console only, never to another site
        for elsewhere in ("//example.org/x", "/\\example.org", "https://example.org"):
            async with console.session.post(
                embedded.url + "/lang",
                data={"lang": "vi", "back": elsewhere, "csrf": console.csrf},
                allow_redirects=False,
            ) as response:
                assert response.status == 303 and response.headers["Location"] == "/"


async def test_a_verification_of_the_whole_ledger_shows_its_result(embedded: Stack) -> None:
    await send(embedded, "Về việc kiểm tra sổ cái", PULL)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])
        await console.get("/ledger")
        await console.post("/ledger/verify", {})

        async def result() -> str | None:
            _, page = await console.get("/ledger")
            found = re.search(r'<p id="verify-result">(.*?)</p>', page, re.S)
            text = found.group(1) if found else ""
            return text if "Sổ cái" in text else None

        assert "Sổ cái toàn vẹn" in await eventually(result)


async def test_alerts_name_dead_letters_for_operators_and_auditors_only(stack: Stack) -> None:
    embedded = stack  # both databases: the overview's counts per minute are SQL of their own
    embedded.webhook.status = 503
    key = await send(embedded, "Về việc khẩn", PUSH, priority=1)  # expires in 3 s here

    async def alerts() -> list[dict[str, Any]]:
        async with GatewayClient(embedded.url, embedded.tokens["auditor"]) as gw:
            return [a for a in await gw.alerts() if a["kind"] == "dead_letters"]

    async with GatewayClient(embedded.url, embedded.tokens[SENDER]) as gw:
        with pytest.raises(ApiError):
            await gw.submit(b"<not-a-package")  # a refusal, counted by code
    (alert,) = await eventually(alerts)
    assert alert["subject"] == PUSH
    async with aiohttp.ClientSession() as session:
        for who, expected in (("operator", 200), (SENDER, 403)):
            headers = {"Authorization": f"Bearer {embedded.tokens[who]}"}
            async with session.get(embedded.url + "/v1/alerts", headers=headers) as response:
                assert response.status == expected, who
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["operator"])
        _, page = await console.get("/")
        assert "dead_letters" in page
        assert re.search(r"Đã nhận: [1-9]", page)  # the chart counted the letter this minute
        assert '<code>xml_malformed</code></td><td class="num">1</td>' in page  # refusals
        _, page = await console.get("/dead")
        assert key.replace("|", "%7C") in page or key in page


async def test_the_units_page_shows_a_push_unit_s_last_delivery(embedded: Stack) -> None:
    key = await send(embedded, "Về việc giao nhận", PUSH)

    async def delivered() -> bool:
        async with GatewayClient(embedded.url, embedded.tokens["auditor"]) as gw:
            view = await gw.document(key)
        return view["recipients"][0]["transport"] == "delivered"

    await eventually(delivered)
    async with Console(embedded.url) as console:
        await console.sign_in(embedded.tokens["auditor"])
        _, page = await console.get("/units")
    row = re.search(rf'<tr id="unit-{re.escape(PUSH)}">.*?</tr>', page, re.S)
    assert row is not None
    health = re.search(r'<td class="health">(.*?)</td>', row.group(0), re.S)
    assert health is not None and "<time" in health.group(1) and "bad" not in health.group(1)
