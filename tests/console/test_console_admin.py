"""The console's price and alert-rule admin pages over HTTP, against a real Meter server: what they list
is what the Admin API holds, the forms go through SetPrice / SetAlertRule with the session's CSRF
token, read keys get 403 pages, secrets are never shown."""

from __future__ import annotations

import re

import httpx
import pytest

from meter.v1 import admin_pb2, common_pb2
from meterd.console import admin_forms

from .test_console_http import sign_in


@pytest.fixture
async def http(console_url):
    async with httpx.AsyncClient(base_url=console_url, timeout=10) as client:
        yield client


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_the_prices_page_shows_the_catalog_source_and_adds_a_tenant_version(http, meter_env):
    _, tenant, _, admin = meter_env
    await sign_in(http, tenant.keys["admin"])
    page = await http.get("/admin/prices")
    listing = await admin.ListPrices(admin_pb2.ListPricesRequest(), metadata=tenant.auth())
    catalog = re.search(r'<p id="catalog">(.*?)</p>', page.text, re.S).group(1)
    if listing.catalog_source:
        assert f"{listing.catalog_source} {listing.catalog_version}" in catalog
    else:
        assert "none imported yet" in catalog
    form = {"csrf": _csrf(page), "provider": "openai", "model": "gpt-console-test", "effective_from": "2026-01-01",
            "input": "$2.50", "output": "10", "per_request": "0.000000001", "note": "negotiated"}  # fmt: skip
    assert (await http.post("/admin/prices/set", data=form | {"csrf": "forged"})).status_code == 403
    refused = await http.post("/admin/prices/set", data=form | {"input": "0.0000000001"})
    assert refused.status_code == 400 and "9 decimals" in refused.text
    added = await http.post("/admin/prices/set", data=form)
    assert added.status_code == 200, added.text[:500]
    assert "cached_read and cache_write not given: billed at the input rate" in added.text
    mine = [
        p
        for p in (await admin.ListPrices(admin_pb2.ListPricesRequest(model="gpt-console-test"), metadata=tenant.auth())).prices
        if p.model_pattern == "gpt-console-test"
    ]  # fmt: skip
    assert len(mine) == 1 and f"<code>{mine[0].id}</code>" in added.text
    p = mine[0]
    assert (p.input_nanos_per_mtok, p.output_nanos_per_mtok) == (2_500_000_000, 10_000_000_000)
    assert (p.cached_read_nanos_per_mtok, p.cache_write_nanos_per_mtok, p.request_nanos) == (2_500_000_000,) * 2 + (1,)
    assert p.note == "negotiated" and p.source == ""
    shown = await http.get("/admin/prices?model=gpt-console-test")
    assert "gpt-console-test" in shown.text and "set by hand" in shown.text and "$2.50" in shown.text


async def test_the_rules_page_creates_replaces_and_shows_channels_without_secrets(http, meter_env):
    _, tenant, _, admin = meter_env
    await sign_in(http, tenant.keys["admin"])
    csrf = _csrf(await http.get("/admin/rules"))
    channels = (
        '{"kind":"slack","url":"https://hooks.slack.com/services/T0/B0/SLACKTOKEN"}\n'
        '{"kind":"pagerduty","secret":"ROUTINGKEY123"}'
    )
    form = {"csrf": csrf, "id": "console-rule", "kind": "window_cost", "severity": "critical", "provider": "openai",
            "amount": "$12.5", "window": "day", "cooldown_seconds": "3600", "channels": channels,
            "template": "[${severity}] spend ${observed}"}  # fmt: skip
    done = await http.post("/admin/rules/set", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/admin/rules?done=console-rule", done.text[:400]
    stored = {
        r.id: r for r in (await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())).rules
    }
    rule = stored["console-rule"]
    assert rule.kind == common_pb2.ALERT_KIND_WINDOW_COST and rule.severity == common_pb2.SEVERITY_CRITICAL
    assert rule.amount_nanos == 12_500_000_000 and rule.window.kind == common_pb2.WINDOW_KIND_DAY
    assert rule.scope.provider == "openai" and rule.cooldown.seconds == 3600
    assert [c.kind for c in rule.channels] == [admin_pb2.CHANNEL_KIND_SLACK, admin_pb2.CHANNEL_KIND_PAGERDUTY]
    page = (await http.get("/admin/rules")).text
    assert "console-rule" in page and "slack: https://hooks.slack.com" in page and "(secret set)" in page
    assert "SLACKTOKEN" not in page and "ROUTINGKEY123" not in page

    # Replacing without re-entering the channels would drop them: refused unless asked for.
    bare = {k: v for k, v in form.items() if k != "channels"} | {"severity": "info"}
    refused = await http.post("/admin/rules/set", data=bare)
    assert refused.status_code == 409 and "2 channel(s)" in refused.text
    assert (await http.post("/admin/rules/set", data=bare | {"drop_secrets": "1"})).status_code == 303
    rule = {
        r.id: r for r in (await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())).rules
    }["console-rule"]
    assert rule.severity == common_pb2.SEVERITY_INFO and not rule.channels

    bad = await http.post("/admin/rules/set", data=form | {"channels": "not json"})
    assert bad.status_code == 400 and "channels line 1" in bad.text
    invalid = await http.post(
        "/admin/rules/set", data=form | {"kind": "error_rate", "error_rate": "2", "drop_secrets": "1"}
    )
    assert invalid.status_code == 400 and "INVALID_ARGUMENT" in invalid.text
    assert (await http.post("/admin/rules/set", data=form | {"csrf": "forged"})).status_code == 403
    deleted = await http.post("/admin/rules/delete", data={"csrf": csrf, "id": "console-rule"})
    assert deleted.status_code == 303


async def test_read_keys_get_403_pages_for_the_forms(http, meter_env):
    await sign_in(http, meter_env[1].keys["read"])
    for path in ("/admin/prices/set", "/admin/rules/set"):
        response = await http.post(path, data={"csrf": "x", "id": "nope"})
        assert response.status_code == 403 and "needs an admin key" in response.text, path


def test_form_parsing_is_exact_and_refuses_what_it_cannot_read():
    price, defaulted = admin_forms.price_from_form(
        {
            "provider": "p",
            "model": "m",
            "effective_from": "2026-02-01T12:00:00",
            "input": "1,000.000000001",
            "output": "0",
            "cache_write": "0.5",
        }  # fmt: skip
    )
    assert price.input_nanos_per_mtok == 1_000_000_000_001 and price.cache_write_nanos_per_mtok == 500_000_000
    assert defaulted == ["cached_read"] and price.cached_read_nanos_per_mtok == price.input_nanos_per_mtok
    assert price.effective_from.ToDatetime().isoformat() == "2026-02-01T12:00:00"
    with pytest.raises(admin_forms.RangeError, match="input is required"):
        admin_forms.price_from_form({"output": "1", "effective_from": "2026-01-01"})
    rule = admin_forms.rule_from_form({"id": "r", "kind": "error_rate", "error_rate": "5%", "latency_ms": "800"})
    assert rule.error_rate == pytest.approx(0.05) and rule.latency.ToMilliseconds() == 800
    with pytest.raises(admin_forms.RangeError, match="kind is one of"):
        admin_forms.rule_from_form({"id": "r", "kind": "nope"})


async def test_admin_page_titles_are_plain_text(http, meter_env):
    await sign_in(http, meter_env[1].keys["admin"])
    for path in ("/admin/limits", "/admin/prices", "/admin/rules", "/admin/keys"):
        title = re.search(r"<title>(.*?)</title>", (await http.get(path)).text, re.S).group(1)
        assert title.startswith("Admin · ") and "<" not in title and len(title) < 60, (path, title[:80])
