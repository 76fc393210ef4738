"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright.
An operator signs in, finds a letter and reads its timeline, redrives a dead letter and sees
it delivered, downloads a receipt that `gateway audit verify-receipt` accepts; an auditor sees
no action and is refused a forged one; markup in a subject stays text; the language switch
changes the labels; and the units page of the 809-unit province is timed (printed, not
asserted). Screenshots go to GATEWAY_TEST_SCREENSHOTS (default ./screenshots, not committed).

Without Chromium or Playwright these tests skip on a laptop and fail in CI
(GATEWAY_TEST_REQUIRE_SERVICES=1), like the tests that need RabbitMQ or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from gatewaystack import (
    PULL,
    PUSH,
    SENDER,
    Stack,
    Webhook,
    directory_csv,
    open_stack,
    province_csv,
)

from gateway.bus import RetryPolicy
from gateway.cli import main
from gateway.client import GatewayClient, build_letter, sign_as_unit, unit
from gateway.envelope import Organization

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(
    os.environ.get("GATEWAY_TEST_SCREENSHOTS") or Path(__file__).parents[2] / "screenshots"
)


def _missing(what: str) -> None:
    message = f"{what} (apt-get install chromium; pip install playwright)"
    if os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message + "; GATEWAY_TEST_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium is not at {CHROMIUM} (GATEWAY_TEST_CHROMIUM)")
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def page_of(browser: Any, stack: Stack, role: str) -> Any:
    """A new browser page signed in to the console with ``role``'s token."""
    context = await browser.new_context(
        accept_downloads=True, viewport={"width": 1400, "height": 900}
    )
    page = await context.new_page()
    await page.goto(stack.url + "/")
    assert page.url.endswith("/login")
    await page.fill("input[name=token]", stack.tokens[role])
    await page.click("button[type=submit]")
    await page.wait_for_url(stack.url + "/")
    return page


async def shoot(page: Any, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


async def send(stack: Stack, subject: str, *to: str, **options: Any) -> str:
    data = sign_as_unit(
        build_letter(
            unit(SENDER), [Organization(c, f"Đơn vị {c}") for c in to], subject, **options
        ),
        stack.keys,
    )
    async with GatewayClient(stack.url, stack.tokens[SENDER]) as gw:
        return (await gw.submit(data)).document_key


async def transport_of(stack: Stack, key: str, recipient: str) -> str:
    async with GatewayClient(stack.url, stack.tokens["auditor"]) as gw:
        view = await gw.document(key)
    return str(next(r["transport"] for r in view["recipients"] if r["code"] == recipient))


# Two attempts, a third of a second apart, then the dead-letter queue: a letter to the push
# unit while its endpoint is down is dead within a second (GATEWAY_BUS_MAX_ATTEMPTS).
SHORT_LIVED = RetryPolicy.of_seconds([0.3], ttl=120, max_attempts=2)


@pytest.fixture(params=["embedded"])
async def short_lived(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[Stack]:
    """The embedded stack whose copies are dead-lettered at their second failed attempt."""
    hook, hook_url = webhook
    async with open_stack(
        request, tmp_path, hook, directory_csv(hook_url), policy=SHORT_LIVED
    ) as opened:
        yield opened


async def dead_letter(stack: Stack, subject: str) -> str:
    """A letter to the push unit while its endpoint is down: dead after two attempts."""
    stack.webhook.status = 503
    key = await send(stack, subject, PUSH)
    for _ in range(150):
        if await transport_of(stack, key, PUSH) == "dead":
            return key
        await asyncio.sleep(0.1)
    raise AssertionError("the letter was not dead-lettered")


async def test_an_operator_finds_a_letter_reads_its_timeline_and_its_receipt_verifies(
    embedded: Stack, browser: Any, tmp_path: Path
) -> None:
    key = await send(embedded, "Về việc tổ chức hội nghị tổng kết năm", PULL)
    page = await page_of(browser, embedded, "operator")
    await shoot(page, "overview")
    await page.click("a[href='/documents']")
    await page.fill("input[name=q]", "hội nghị tổng kết")
    await page.click("form[action='/documents'] button[type=submit]")
    await page.click("#results a")
    assert await page.locator("#subject").inner_text() == "Về việc tổ chức hội nghị tổng kết năm"
    timeline = page.locator(f"#r-{PULL.replace('.', chr(92) + '.')} tr.event")
    assert "queued" in await timeline.first.inner_text()
    await shoot(page, "document")
    async with page.expect_download() as waiting:
        await page.click(f"#r-{PULL.replace('.', chr(92) + '.')} a.receipt")
    download = await waiting.value
    saved = tmp_path / "receipt.json"
    await download.save_as(str(saved))
    pinned = embedded.keys / "gateway" / "cert.pem"
    checked = await asyncio.to_thread(
        CliRunner().invoke, main, ["audit", "verify-receipt", str(saved), "--key", str(pinned)]
    )
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(f"OK {saved}") and key.split("|")[0] in checked.output
    await page.context.close()


async def test_an_operator_redrives_a_dead_letter_and_sees_it_delivered(
    short_lived: Stack, browser: Any
) -> None:
    embedded = short_lived
    key = await dead_letter(embedded, "Về việc khẩn: lịch họp")
    page = await page_of(browser, embedded, "operator")
    await page.click("a[href='/dead']")
    await page.check("input[name=pick]")
    # dead-lettered by the retry policy, not expired: its reason says so
    assert (await page.locator(".last-error").first.inner_text()).startswith("2 attempts failed")
    assert "\tdead\t" in await page.locator("tr.copy").first.inner_text()
    embedded.webhook.status = 200
    await page.click("#redrive-selected")
    await page.click("#confirm")  # the confirmation page
    assert "1" in await page.locator("#done").inner_text()
    assert await page.locator("#none").count() == 1  # nothing dead any more
    for _ in range(100):
        await page.goto(f"{embedded.url}/documents/{quote(key, safe='')}")
        if await page.locator(".transport").first.inner_text() == "delivered":
            break
        await asyncio.sleep(0.2)
    assert await page.locator(".transport").first.inner_text() == "delivered"
    async with GatewayClient(embedded.url, embedded.tokens["auditor"]) as gw:
        redrives = [
            e for e in (await gw.entries(event="operator"))["entries"] if e["code"] == "redrive"
        ]
    assert [e["details"]["role"] for e in redrives] == ["operator"]
    await page.context.close()


async def test_an_auditor_sees_no_redrive_button_and_a_forged_post_is_refused(
    short_lived: Stack, browser: Any
) -> None:
    embedded = short_lived
    key = await dead_letter(embedded, "Về việc kiểm tra")
    page = await page_of(browser, embedded, "auditor")
    await page.click("a[href='/dead']")
    assert await page.locator("tr.copy").count() == 1  # the auditor sees the dead letter...
    assert await page.locator("#redrive-selected, .redrive-all, input[name=pick]").count() == 0
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    forged = await page.request.post(
        embedded.url + "/dead/redrive",
        form={"csrf": csrf, "all": PUSH, "confirm": "1"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert await transport_of(embedded, key, PUSH) == "dead"  # nothing was redriven
    await page.context.close()


async def test_markup_in_a_subject_is_shown_as_text(embedded: Stack, browser: Any) -> None:
    subject = "<script>window.pwned = 1</script><b>in đậm</b>"
    await send(embedded, subject, PULL)
    page = await page_of(browser, embedded, "operator")
    await page.goto(embedded.url + "/documents?q=" + "in đậm")
    await page.click("#results a")
    assert await page.locator("#subject").inner_text() == subject
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#subject b").count() == 0
    await page.context.close()


async def test_the_language_switch_changes_the_labels_and_is_remembered(
    embedded: Stack, browser: Any
) -> None:
    page = await page_of(browser, embedded, "auditor")
    assert await page.locator("nav a[href='/units']").inner_text() == "Đơn vị"
    await page.click("button[name=lang][value=en]")
    assert await page.locator("nav a[href='/units']").inner_text() == "Units"
    await page.goto(embedded.url + "/ledger")
    assert await page.locator("#verify").inner_text() == "Verify the whole ledger"
    await page.click("button[name=lang][value=vi]")
    assert await page.locator("#verify").inner_text() == "Kiểm tra toàn bộ sổ cái"
    await page.context.close()


@pytest.fixture(params=["embedded"])
async def province_embedded(
    request: pytest.FixtureRequest, tmp_path: Path, webhook: tuple[Webhook, str]
) -> AsyncIterator[Stack]:
    hook, hook_url = webhook
    async with open_stack(request, tmp_path, hook, province_csv(hook_url)) as opened:
        yield opened


async def test_the_units_page_of_the_whole_province(province_embedded: Stack, browser: Any) -> None:
    stack = province_embedded
    page = await page_of(browser, stack, "operator")
    started = time.perf_counter()
    await page.goto(stack.url + "/units")
    loaded = time.perf_counter() - started
    timing = await page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    rows = await page.locator("#units tr[id^=unit-]").count()
    print(
        f"\nunits page with {rows} units: loaded in {loaded * 1000:.0f} ms "
        f"(HTML received after {timing['responseEnd']:.0f} ms, "
        f"laid out after {timing['domContentLoadedEventEnd']:.0f} ms)"
    )
    assert rows == len(list(stack.runtime.gateway.directory)) == 809
    await shoot(page, "units", full_page=False)  # the first screenful of 809 rows
    # an operator suspends a unit from its row, and resumes it: the last row, far below the
    # screen, where the browser had not laid it out
    code = (await page.locator("#units tr[id^=unit-]").last.get_attribute("id") or "")[5:]
    row = page.locator(f"#unit-{code.replace('.', chr(92) + '.')}")
    assert await row.locator(".status").get_attribute("data-status") == "active"
    await row.locator("button").click()
    await page.wait_for_url(f"{stack.url}/units?done=suspended*")
    assert await row.locator(".status").get_attribute("data-status") == "suspended"
    await row.locator("button").click()
    await page.wait_for_url(f"{stack.url}/units?done=active*")
    assert await row.locator(".status").get_attribute("data-status") == "active"
    await page.context.close()
