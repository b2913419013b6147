"""The console over HTTP (no browser): sign-in, sessions and CSRF, admin-only pages, every page
answers, exports and reports, against a real Meter server holding known calls."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from meterd.console.app import SIGNIN_CSRF, create_app
from meterd.console.sessions import COOKIE

PAGES = [
    "/",
    "/?range=today",
    "/?range=30d&stack=provider",
    "/?range=month&label_key=conversation",
    "/?range=custom&start=2026-03-05&end=2026-03-10",
    "/limits",
    "/alerts",
    "/calls",
    "/calls?outcome=error&provider=openai",
    "/report",
    "/report?period=week",
    "/report?period=month",
]
ADMIN_PAGES = [
    "/admin/limits",
    "/admin/prices",
    "/admin/prices?history=1&provider=openai",
    "/admin/rules",
    "/admin/keys",
]


def _cookie(response: httpx.Response, name: str) -> str | None:
    match = re.search(rf"(?:^|, ){name}=([^;]+)", response.headers.get("set-cookie", ""))
    return match.group(1) if match else None


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """The browser's part by hand: the cookies are Secure, which httpx keeps from plain http."""
    client.headers.pop("cookie", None)
    form = await client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    response = await client.post(
        "/signin",
        data={"csrf": csrf, "api_key": key},
        headers={"cookie": f"{SIGNIN_CSRF}={_cookie(form, SIGNIN_CSRF)}"},
    )
    session = _cookie(response, COOKIE)
    if session:
        client.headers["cookie"] = f"{COOKIE}={session}"
    return response


@pytest.fixture
async def http(console_url):
    async with httpx.AsyncClient(base_url=console_url, timeout=10) as client:
        yield client


async def test_nothing_is_served_without_a_session(http):
    for path in PAGES + ADMIN_PAGES + ["/export.csv?table=models", "/alerts/stream", "/fragments/table?table=users"]:
        response = await http.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/signin", path
    assert (await http.get("/static/console.js")).status_code == 200
    assert "Chart.js" in (await http.get("/static/chart.umd.min.js")).text[:200]


async def test_sign_in_sets_an_http_only_strict_cookie_holding_no_key(http, meter_env):
    key = meter_env[1].keys["read"]
    response = await sign_in(http, key)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert (
        cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    )
    assert key not in cookie and key.split("_")[2] not in cookie
    page = await http.get("/")
    assert page.status_code == 200 and "Overview" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


async def test_bad_keys_and_missing_csrf_are_refused(http, meter_env):
    assert (await sign_in(http, "mk_unknown_secret")).status_code == 401
    assert "does not know this key" in (await sign_in(http, "mk_unknown_secret")).text
    assert "start with mk_" in (await sign_in(http, "hello")).text
    check_only = await sign_in(http, meter_env[1].keys["check"])
    assert check_only.status_code == 401 and "read role" in check_only.text
    forged = await http.post("/signin", data={"csrf": "x", "api_key": meter_env[1].keys["read"]})
    assert forged.status_code == 400 and _cookie(forged, COOKIE) is None


async def test_every_page_answers_for_a_read_key_and_admin_pages_refuse_it(http, meter_env):
    await sign_in(http, meter_env[1].keys["read"])
    for path in PAGES:
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "server-timing" in response.headers
    for path in ADMIN_PAGES:
        assert (await http.get(path)).status_code == 403, path
    assert "needs an admin key" in (await http.get("/limits")).text


async def test_admin_pages_list_what_the_api_holds(http, meter_env):
    await sign_in(http, meter_env[1].keys["admin"])
    for path in ADMIN_PAGES:
        assert (await http.get(path)).status_code == 200, path
    assert "daily-spend" in (await http.get("/admin/limits")).text
    assert "big-call" in (await http.get("/admin/rules")).text
    assert "test read" in (await http.get("/admin/keys")).text
    limits = (await http.get("/limits")).text
    assert 'data-limit="daily-spend"' in limits and 'data-limit="user-requests"' in limits


async def test_bad_input_is_a_clear_400(http, meter_env):
    await sign_in(http, meter_env[1].keys["read"])
    for path in [
        "/?range=custom",
        "/?range=custom&start=nope",
        "/?range=bogus",
        "/calls?start=yesterday",
        "/calls/detail",
    ]:
        response = await http.get(path)
        assert response.status_code == 400, path
        assert 'role="alert"' in response.text


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(http, meter_env):
    await sign_in(http, meter_env[1].keys["read"])
    assert (await http.post("/signout", data={"csrf": "wrong"})).status_code == 403
    page = await http.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert (await http.post("/signout", data={"csrf": csrf})).status_code == 303
    assert (await http.get("/")).status_code == 303


async def test_csv_export_and_report_formats(http, meter_env):
    await sign_in(http, meter_env[1].keys["read"])
    export = await http.get("/export.csv?range=7d&table=models")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0] == "model,cost_usd,calls,tokens,error_rate,latency_p95_s" and len(lines) == 4
    fragment = await http.get("/fragments/table?range=7d&table=labels&label_key=conversation")
    assert fragment.status_code == 200 and fragment.text.count("<tr>") == 6 and "conv-4" in fragment.text
    assert (await http.get("/fragments/table?table=models")).status_code == 400
    markdown = await http.get("/report?period=week&format=markdown")
    assert markdown.text.startswith("# Meter week report") and "## By model" in markdown.text
    csv_report = await http.get("/report?period=month&format=csv")
    assert csv_report.text.startswith("section,name,cost_usd")


async def test_admin_actions_need_the_session_csrf_token(http, meter_env):
    from meter.v1 import admin_pb2, common_pb2

    _, tenant, _, admin = meter_env
    doomed = admin_pb2.Limit(
        id="doomed",
        metric=common_pb2.METRIC_REQUESTS,
        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_HOUR),
        max=5,
    )
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=doomed), metadata=tenant.auth())
    await sign_in(http, tenant.keys["read"])
    assert (await http.post("/admin/limits/delete", data={"id": "doomed"})).status_code == 403
    await sign_in(http, tenant.keys["admin"])
    page = await http.get("/admin/limits")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert (await http.post("/admin/limits/delete", data={"id": "doomed", "csrf": "forged"})).status_code == 403
    assert "doomed" in [
        lim.id for lim in (await admin.ListLimits(admin_pb2.ListLimitsRequest(), metadata=tenant.auth())).limits
    ]
    done = await http.post("/admin/limits/delete", data={"id": "doomed", "csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/admin/limits?done=doomed"
    assert "doomed" not in [
        lim.id for lim in (await admin.ListLimits(admin_pb2.ListLimitsRequest(), metadata=tenant.auth())).limits
    ]
    missing = await http.post("/admin/rules/delete", data={"id": "no-such-rule", "csrf": csrf})
    assert missing.status_code == 502 and "NOT_FOUND" in missing.text
    assert (await http.get("/admin/limits/delete")).status_code == 405


async def test_admin_forms_create_a_limit_in_dollars_and_a_key_shown_once(http, meter_env):
    from meter.v1 import admin_pb2, common_pb2

    _, tenant, _, admin = meter_env
    await sign_in(http, tenant.keys["admin"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', (await http.get("/admin/limits")).text).group(1)
    form = {"csrf": csrf, "id": "from-form", "metric": "cost", "max": "$12.3456789012", "window": "week",
            "partition": "per_subject", "action": "warn", "subject_prefix": "user:", "thresholds": "50,90"}  # fmt: skip
    assert "whole" in (await http.post("/admin/limits/set", data=form)).text  # 10 decimals of a dollar
    form["max"] = "12.3456789"
    done = await http.post("/admin/limits/set", data=form)
    assert done.status_code == 303, done.text[:300]
    stored = (await admin.GetLimit(admin_pb2.GetLimitRequest(id="from-form"), metadata=tenant.auth())).limit
    assert stored.max == 12_345_678_900 and stored.metric == common_pb2.METRIC_COST_NANOS
    assert stored.partition == common_pb2.PARTITION_PER_SUBJECT and list(stored.alert_thresholds_percent) == [50, 90]
    assert stored.selector.subject_prefix == "user:" and stored.window.kind == common_pb2.WINDOW_KIND_WEEK
    bad = await http.post("/admin/limits/set", data=form | {"window": "sliding", "seconds": ""})
    assert bad.status_code == 400 and "INVALID_ARGUMENT" in bad.text
    await admin.DeleteLimit(admin_pb2.DeleteLimitRequest(id="from-form"), metadata=tenant.auth())

    created = await http.post(
        "/admin/keys/create", data={"csrf": csrf, "name": "made in the console", "role": ["read"]}
    )
    secret = re.search(r'<code id="new-secret">(mk_[^<]+)</code>', created.text).group(1)
    assert "made in the console" in created.text
    assert "new-secret" not in (await http.get("/admin/keys")).text
    async with httpx.AsyncClient(base_url=str(http.base_url)) as other:
        assert (await sign_in(other, secret)).status_code == 303


async def test_the_alert_stream_resumes_from_last_event_id(http, meter_env, monkeypatch):
    """A reconnecting EventSource sends Last-Event-ID (the last heartbeat's resume_id): the stream
    replays from there, so alerts raised while the browser was away still arrive."""
    from meter.v1 import common_pb2, meter_pb2
    from meterd.console import alert_feed

    monkeypatch.setattr(alert_feed, "HEARTBEAT_SECONDS", 1.0)
    _, tenant, meter, _ = meter_env
    await meter.RecordCall(  # over the big-call rule: an alert, raised while no browser listens
        meter_pb2.RecordCallRequest(
            call_id="while-away", subject="user:7", provider="openai", model="gpt-4.1",
            usage=common_pb2.Usage(input_tokens=1), cost_nanos=700_000_000,
        ),
        metadata=tenant.auth("record"),
    )  # fmt: skip
    await sign_in(http, tenant.keys["read"])
    events: list[str] = []
    async with asyncio.timeout(20):
        async with http.stream("GET", "/alerts/stream", headers={"last-event-id": "0"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                events.append(line)
                if line.startswith("id: "):  # the first heartbeat: the replay is over
                    break
    alerts = [json.loads(line[6:]) for line in events if line.startswith('data: {"id"')]
    assert any(a["kind"] == "call_cost" and a["subject"] == "user:7" for a in alerts), events[:20]
    assert "event: alert" in events and "event: heartbeat" in events


async def test_the_console_dials_meter_over_mutual_tls(database_url, tmp_path):
    from meter import TLS
    from meter_testing.certs import Pki, mutual_tls
    from meter_testing.fixtures import create_tenant, running_server

    from .conftest import serving

    pki = Pki(tmp_path)
    settings, client = mutual_tls(pki, "console", "localhost", "127.0.0.1")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        tls = TLS(ca_file=pki.ca(), cert_file=client.cert, key_file=client.key)
        async with (
            serving(create_app(f"127.0.0.1:{server.port}", tls=tls)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            assert (await sign_in(http, tenant.keys["read"])).status_code in (302, 303)
            assert (await http.get("/")).status_code == 200
