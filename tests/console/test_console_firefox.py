"""The console in headless Firefox (Debian's firefox-esr, over Marionette: tests/console/marionette.py):
sign in, every page renders with no error and its charts drawn, the overview's cost card shows
GetUsage's figure, an admin form round-trips. Screenshots go to a temporary directory.

Outside CI a machine without firefox-esr skips this (saying why); in CI it runs or fails (`.ci/run`
installs firefox-esr)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest

from meter.v1 import admin_pb2, meter_pb2
from meter_testing.waiting import eventually
from meterd.console import fmt

from .conftest import T0, _ts
from .marionette import FIREFOX, Firefox
from .test_console_browser import PAGES

if not os.path.exists(FIREFOX) and not os.environ.get("CI"):
    pytest.skip(
        "no firefox-esr on this machine (apt-get install firefox-esr); CI always runs this", allow_module_level=True
    )


async def run(browser: Firefox, method: str, *args):
    """Marionette calls block: in a thread, so the console (served from this event loop) can answer."""
    return await asyncio.to_thread(getattr(browser, method), *args)


async def until(browser: Firefox, script: str, what: str) -> None:
    async def holds() -> bool:
        return bool(await run(browser, "js", script))

    await eventually(holds, within=20, what=what)


async def test_firefox_signs_in_and_renders_every_page(console_url, meter_env, tmp_path_factory, capsys):
    _, tenant, meter, admin = meter_env
    shots = Path(tmp_path_factory.mktemp("console-firefox"))
    browser = await asyncio.to_thread(Firefox.start)
    try:
        await run(browser, "goto", f"{console_url}/")
        assert (await run(browser, "url")).endswith("/signin")
        await run(browser, "js", "document.querySelector('#api_key, input[name=api_key]').value = arguments[0];"
                                 "document.querySelector('form[action=\"/signin\"]').submit();", tenant.keys["admin"])  # fmt: skip
        await until(
            browser, "return location.pathname === '/' && !!document.querySelector('[data-metric]')", "signed in"
        )
        assert tenant.keys["admin"] not in await run(
            browser, "js", "return document.cookie"
        )  # HttpOnly: not even the id

        for name, path in PAGES:
            await run(browser, "goto", f"{console_url}{path}")
            assert await run(browser, "js", "return document.querySelectorAll('h1').length") == 1, name
            alert = await run(
                browser, "js", "const a = document.querySelector('[role=alert]'); return a && a.textContent"
            )
            assert not alert, (name, alert)
            if name.startswith("overview"):
                await until(browser, "return document.body.dataset.charts === 'drawn'", f"{name} charts drawn")
            await until(
                browser, "return document.querySelectorAll('.deferred').length === 0", f"{name} deferred tables"
            )
            await run(browser, "screenshot", shots / f"{name}.png")

        usage = await meter.GetUsage(
            meter_pb2.GetUsageRequest(start=_ts(T0 - dt.timedelta(days=7)), end=_ts(T0)), metadata=tenant.auth("read")
        )
        await run(browser, "goto", f"{console_url}/?range=7d")
        shown = await run(
            browser, "js", "return document.querySelector('[data-metric=cost] .value').textContent.trim()"
        )
        assert shown == fmt.usd(usage.totals.cost_nanos)
        assert "local time" in await run(browser, "js", "return document.querySelector('time').title")

        await run(browser, "goto", f"{console_url}/admin/prices")
        await run(browser, "js", """
            const f = document.querySelector('#price-form');
            for (const [k, v] of Object.entries(arguments[0])) f.elements[k].value = v;
            f.submit();""", {"provider": "google", "model": "gemini-firefox-test", "effective_from": "2026-02-01",
                             "input": "1.25", "output": "5"})  # fmt: skip
        await until(browser, "const n = document.querySelector('.notice'); return n && n.textContent.includes('gemini-firefox-test')",
                    "the price version added")  # fmt: skip
        listing = await admin.ListPrices(
            admin_pb2.ListPricesRequest(model="gemini-firefox-test"), metadata=tenant.auth()
        )
        assert [p.input_nanos_per_mtok for p in listing.prices if p.model_pattern == "gemini-firefox-test"] == [
            1_250_000_000
        ]
    finally:
        await asyncio.to_thread(browser.close)
    with capsys.disabled():
        print(f"\nFirefox {browser.version} screenshots: {shots}")
