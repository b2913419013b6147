"""The console in headless Chromium (Debian's, driven by Playwright): sign in, every page, the figures
shown against GetUsage, a live alert arriving over server-sent events, an accessibility smoke check,
and screenshots of every page in a temporary directory (its path is printed).

Outside CI, a machine without /usr/bin/chromium skips these tests (saying why); in CI (CI set) they
run or fail: `.ci/run` installs chromium."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil

import pytest

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meterd.console import fmt

from .conftest import T0, _ts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("no chromium on this machine (apt-get install chromium); CI always runs these", allow_module_level=True)

from playwright.async_api import async_playwright, expect  # noqa: E402

# Without the background-networking flags Chromium keeps calling Google's hosts on this closed network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PAGES = [
    ("overview", "/?range=7d"),
    ("overview-provider-30d", "/?range=30d&stack=provider&label_key=conversation"),
    ("limits", "/limits"),
    ("calls", "/calls"),
    ("report", "/report?period=week"),
    ("admin-limits", "/admin/limits"),
    ("admin-prices", "/admin/prices"),
    ("admin-rules", "/admin/rules"),
    ("admin-keys", "/admin/keys"),
]
# Every form control has a label; every image and chart has a text alternative; text has AA contrast.
A11Y = r"""() => {
  const bad = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label') || el.getAttribute('aria-label');
    if (!labelled) bad.push(el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('img:not([alt]), canvas:not([aria-label])')) bad.push(el.outerHTML.slice(0, 80));
  if (!document.documentElement.lang) bad.push('html without lang');
  // Text contrast (WCAG AA: 4.5:1, 3:1 for large text) against the first opaque background behind it.
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    let bg = null;
    for (let up = el; up && !bg; up = up.parentElement) {
      const c = rgb(getComputedStyle(up).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) bg = c.slice(0, 3);
    }
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(bg || [255, 255, 255])];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && style.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(`contrast ${ratio.toFixed(2)}: ${el.outerHTML.slice(0, 60)}`);
  }
  return bad;
}"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="module")
async def browser():
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        await chromium.close()


async def signed_in(browser, url, key):
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Europe/Paris")
    page = await context.new_page()
    await page.goto(f"{url}/")
    assert page.url.endswith("/signin")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{url}/")
    return context, page


async def test_every_page_with_figures_from_get_usage(browser, console_url, meter_env, shots, capsys):
    server, tenant, meter, admin = meter_env
    context, page = await signed_in(browser, console_url, tenant.keys["admin"])
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["meter_console"]["httpOnly"] and cookies["meter_console"]["sameSite"] == "Strict"
    assert tenant.keys["admin"] not in str(cookies)

    usage = await meter.GetUsage(
        meter_pb2.GetUsageRequest(start=_ts(T0 - dt.timedelta(days=7)), end=_ts(T0), include_projection=True),
        metadata=tenant.auth("read"),
    )
    models = await meter.GetUsage(
        meter_pb2.GetUsageRequest(
            start=_ts(T0 - dt.timedelta(days=7)),
            end=_ts(T0),
            group_by=[meter_pb2.GROUP_BY_MODEL],
            order_by=meter_pb2.USAGE_ORDER_COST,
            descending=True,
        ),
        metadata=tenant.auth("read"),
    )
    previous = await meter.GetUsage(
        meter_pb2.GetUsageRequest(start=_ts(T0 - dt.timedelta(days=14)), end=_ts(T0 - dt.timedelta(days=7))),
        metadata=tenant.auth("read"),
    )
    users = await meter.GetUsage(
        meter_pb2.GetUsageRequest(
            start=_ts(T0 - dt.timedelta(days=7)),
            end=_ts(T0),
            group_by=[meter_pb2.GROUP_BY_SUBJECT],
            order_by=meter_pb2.USAGE_ORDER_COST,
            descending=True,
            limit=10,
        ),
        metadata=tenant.auth("read"),
    )
    assert usage.totals.calls == 180 and previous.totals.calls == 36
    problems = {}
    for name, path in PAGES:
        await page.goto(f"{console_url}{path}")
        assert await page.locator("h1").count() == 1, name
        assert not await page.locator("[role=alert]").count(), (name, await page.content())
        if name.startswith("overview"):
            await expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
        await expect(page.locator(".deferred")).to_have_count(0)  # every deferred table arrived
        problems.update({f"{name}: {p}": 1 for p in await page.evaluate(A11Y)})
        await page.screenshot(path=shots / f"{name}.png", full_page=True)
    assert not problems, list(problems)

    await page.goto(f"{console_url}/?range=7d")
    card = page.locator('[data-metric="cost"] .value')
    await expect(card).to_have_text(fmt.usd(usage.totals.cost_nanos))
    assert await card.get_attribute("title") == fmt.usd_exact(usage.totals.cost_nanos)
    await expect(page.locator('[data-metric="cost"] .change')).to_contain_text(
        fmt.change(usage.totals.cost_nanos, previous.totals.cost_nanos)
    )
    await expect(page.locator('[data-metric="calls"] .value')).to_have_text("180")
    await expect(page.locator('[data-metric="calls"] .change')).to_contain_text("+400.0%")
    await expect(page.locator('[data-metric="error_rate"] .value')).to_have_text(
        fmt.percent(usage.totals.error_rate, 2)
    )
    await expect(page.locator('[data-metric="projection"] .value')).to_have_text(
        fmt.usd(usage.projection.projected_month_cost_nanos)
    )
    first = page.locator("#top-models tbody tr").first
    await expect(first.locator("td").nth(0)).to_have_text(models.rows[0].key.model)
    await expect(first.locator("td").nth(1)).to_have_text(fmt.usd(models.rows[0].stats.cost_nanos))
    await expect(page.locator("#top-users tbody tr")).to_have_count(4)  # a deferred table, fetched by the page
    await expect(page.locator("#top-users tbody tr").first.locator("td").nth(1)).to_have_text(
        fmt.usd(users.rows[0].stats.cost_nanos)
    )
    # Local time on hover: the page's script fills the title in the browser's zone (Paris here).
    title = await page.locator("time").first.get_attribute("title")
    assert title and "local time" in title

    # Revoking a key from the admin page (after the browser's confirmation dialog).
    created = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name="to revoke", roles=[admin_pb2.ROLE_READ]), metadata=tenant.auth()
    )
    await page.goto(f"{console_url}/admin/keys")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name=f"Revoke {created.key.id}").click()
    await expect(page.locator(".notice")).to_contain_text(created.key.id)
    keys = await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(include_revoked=True), metadata=tenant.auth())
    assert next(k for k in keys.keys if k.id == created.key.id).revoke_time.seconds > 0

    # A call's detail from the list.
    await page.goto(f"{console_url}/calls?model=gpt-4.1&outcome=error")
    link = page.locator("#calls tbody a").first
    call_id = await link.text_content()
    await link.click()
    await expect(page.locator("h1")).to_contain_text(call_id)
    await page.screenshot(path=shots / "call-detail.png", full_page=True)
    with capsys.disabled():
        print(f"\nconsole screenshots: {shots}")
    await context.close()


async def test_a_live_alert_appears_without_reloading(browser, console_url, meter_env, shots):
    server, tenant, meter, _ = meter_env
    context, page = await signed_in(browser, console_url, tenant.keys["read"])
    await page.goto(f"{console_url}/alerts")
    await expect(page.locator("#feed-state")).to_have_text("live", timeout=15_000)
    await meter.RecordCall(
        meter_pb2.RecordCallRequest(
            call_id="expensive-1",
            subject="user:9",
            provider="openai",
            model="gpt-4.1",
            usage=common_pb2.Usage(input_tokens=10, output_tokens=10),
            cost_nanos=900_000_000,
            occurred_at=_ts(T0),
        ),
        metadata=tenant.auth("record"),
    )
    row = page.locator("#alert-feed tbody tr").first
    await expect(row).to_contain_text("call_cost", timeout=15_000)
    await expect(row).to_contain_text("user:9")
    await page.screenshot(path=shots / "alerts-live.png", full_page=True)
    # The read key sees no admin links.
    assert not await page.locator('a[href^="/admin"]').count()
    await context.close()


async def test_admin_adds_a_price_version_and_an_alert_rule_in_the_browser(browser, console_url, meter_env, shots):
    _, tenant, _, admin = meter_env
    context, page = await signed_in(browser, console_url, tenant.keys["admin"])
    await page.goto(f"{console_url}/admin/prices")
    await page.get_by_label("Provider", exact=True).last.fill("anthropic")
    await page.get_by_label("Model (name or glob)").fill("claude-browser-test")
    await page.get_by_label("From (UTC)").fill("2026-02-01")
    await page.get_by_label("input ($)").fill("3")
    await page.get_by_label("output ($)").fill("15.000000001")
    await page.get_by_role("button", name="Add price version").click()
    await expect(page.locator(".notice")).to_contain_text("claude-browser-test")
    listing = await admin.ListPrices(admin_pb2.ListPricesRequest(model="claude-browser-test"), metadata=tenant.auth())
    mine = [p for p in listing.prices if p.model_pattern == "claude-browser-test"]
    assert [p.output_nanos_per_mtok for p in mine] == [15_000_000_001]
    await page.screenshot(path=shots / "admin-prices-added.png", full_page=True)

    await page.goto(f"{console_url}/admin/rules")
    await page.get_by_label("Id", exact=True).fill("browser-rule")
    await page.get_by_label("Kind").select_option("call_cost")
    await page.get_by_label("Amount ($)").fill("0.75")
    await page.get_by_label("Channels (one JSON object a line)").fill(
        '{"kind":"discord","url":"https://discord.com/api/webhooks/1/BROWSERTOKEN"}'
    )
    await page.get_by_role("button", name="Save rule").click()
    await expect(page.locator(".notice")).to_contain_text("browser-rule")
    row = page.locator("#rules tbody tr", has_text="browser-rule")
    await expect(row).to_contain_text("discord: https://discord.com")
    assert "BROWSERTOKEN" not in await page.content()
    rules = await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())
    assert next(r for r in rules.rules if r.id == "browser-rule").amount_nanos == 750_000_000
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Delete browser-rule").click()
    await expect(page.locator("#rules tbody tr", has_text="browser-rule")).to_have_count(0)
    await context.close()

    context, page = await signed_in(browser, console_url, tenant.keys["read"])
    for path in ("/admin/prices", "/admin/rules"):
        response = await page.goto(f"{console_url}{path}")
        assert response.status == 403
        await expect(page.locator("[role=alert]")).to_contain_text("needs an admin key")
    await context.close()
