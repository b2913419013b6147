"""The Prometheus endpoint as standard dashboards read it: go-grpc-prometheus names and labels for
every RPC (streams and health included), process and build info, business series by provider and
model only; and `promtool check metrics` accepts the exposition."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import urllib.request
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, limit, record


def series(body: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total, found = 0.0, False
    for line in body.splitlines():
        m = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if m:
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total, found = total + float(m.group(2)), True
    assert found, f"no {name} with {labels}"
    return total


@pytest.fixture(scope="module")
async def scraped(postgres):
    """The exposition after a known mix of RPCs."""
    url = postgres.create_database()
    try:
        async with running_server(url, metrics_listen="127.0.0.1:0", alert_poll_interval=0.2) as server:
            tenant = await create_tenant(server)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
                await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("one", "REQUESTS", "DAY", max=1)),
                                     metadata=tenant.auth())  # fmt: skip
                await meter.RecordCall(record(call_id=uuid.uuid4().hex), metadata=tenant.auth("record"))
                denied = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
                assert not denied.allowed
                with pytest.raises(grpc.aio.AioRpcError):
                    await meter.GetUsage(meter_pb2.GetUsageRequest())
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
                asks = [reflection_pb2.ServerReflectionRequest(list_services="")] * 2
                assert len([r async for r in reflect.ServerReflectionInfo(iter(asks))]) == 2
                stream = meter.StreamAlerts(
                    meter_pb2.StreamAlertsRequest(since_id=0, heartbeat_interval={"seconds": 1}),
                    metadata=tenant.auth("read"),
                )
                async for reply in stream:
                    if reply.HasField("heartbeat"):
                        break
                stream.cancel()
            port = server.metrics_http.server_port
            deadline = asyncio.get_running_loop().time() + 10
            while True:  # the cancelled stream's handled count lands when its handler has unwound
                body = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
                )
                text = body.decode()
                if (
                    'grpc_method="StreamAlerts"' in text
                    and "grpc_server_handled_total" in text
                    and (
                        re.search(r'grpc_server_handled_total\{grpc_code="Canceled",grpc_method="StreamAlerts"', text)
                        or asyncio.get_running_loop().time() > deadline
                    )
                ):
                    break
                await asyncio.sleep(0.05)  # sleep-ok: a scrape poll bounded by its deadline, not a barrier
            yield text
    finally:
        postgres.drop_database(url)


async def test_rpcs_are_counted_with_go_grpc_prometheus_names_and_labels(scraped):
    unary = {"grpc_type": "unary", "grpc_service": "meter.v1.Meter"}
    assert series(scraped, "grpc_server_started_total", grpc_method="RecordCall", **unary) == 1
    assert series(scraped, "grpc_server_handled_total", grpc_method="RecordCall", grpc_code="OK", **unary) == 1
    assert (
        series(scraped, "grpc_server_handled_total", grpc_method="GetUsage", grpc_code="Unauthenticated", **unary) == 1
    )
    assert series(scraped, "grpc_server_handling_seconds_count", grpc_method="CheckQuota", **unary) == 1
    assert series(scraped, "grpc_server_msg_received_total", grpc_method="CheckQuota", **unary) == 1
    assert series(scraped, "grpc_server_msg_sent_total", grpc_method="CheckQuota", **unary) == 1
    stream = {"grpc_type": "server_stream", "grpc_method": "StreamAlerts"}
    assert series(scraped, "grpc_server_started_total", **stream) == 1
    assert series(scraped, "grpc_server_msg_sent_total", **stream) >= 1  # the heartbeat
    assert series(scraped, "grpc_server_handled_total", grpc_code="Canceled", **stream) == 1
    assert series(scraped, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health", grpc_method="Check",
                  grpc_code="OK") == 1  # fmt: skip
    bidi = {"grpc_type": "bidi_stream", "grpc_method": "ServerReflectionInfo"}
    assert series(scraped, "grpc_server_msg_received_total", **bidi) == 2
    assert series(scraped, "grpc_server_msg_sent_total", **bidi) == 2
    assert series(scraped, "grpc_server_handled_total", grpc_code="OK", **bidi) == 1


async def test_process_build_and_business_series_are_there_without_tenant_labels(scraped):
    assert series(scraped, "process_resident_memory_bytes") > 0 and series(scraped, "process_cpu_seconds_total") > 0
    assert series(scraped, "python_info") == 1
    assert series(scraped, "meter_build_info", version="0.1.0") == 1
    by_model = {"provider": "openai", "model": "gpt-4.1"}
    assert series(scraped, "meter_calls_recorded_total", outcome="success", **by_model) == 1
    assert series(scraped, "meter_tokens_recorded_total", kind="output", **by_model) == 500
    assert series(scraped, "meter_cost_recorded_usd_total", **by_model) == pytest.approx(0.06)
    assert series(scraped, "meter_quota_denials_total", **by_model) == 1
    assert series(scraped, "meter_reservations_expired_total") == 0
    assert "meter_reservations_active" in scraped and "meter_alert_webhooks_total" in scraped
    assert "tenant" not in scraped and "subject=" not in scraped and "team:search" not in scraped


async def test_promtool_accepts_the_exposition(scraped, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=scraped, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_labels_are_capped():
    from meterd.api.business_metrics import OTHER, ModelLabels

    labels = ModelLabels(cap=2)
    assert labels("OpenAI", "GPT-4.1") == ("openai", "gpt-4.1")
    assert labels("anthropic", "claude") == ("anthropic", "claude")
    assert labels("x", "y") == OTHER and labels("openai", "gpt-4.1") == ("openai", "gpt-4.1")


def test_tenant_labels_never_take_more_values_than_the_cap():
    from meterd.api.business_metrics import TenantLabels

    labels = TenantLabels(cap=3)
    seen = {labels(f"t{i}") for i in range(50)} | {labels("t0"), labels("other")}
    assert seen == {"t0", "t1", "other"}
    with pytest.raises(ValueError):
        TenantLabels(cap=1)


async def test_per_tenant_series_are_opt_in_and_capped_with_the_overflow_folded_into_other(postgres):
    url = postgres.create_database()
    try:
        async with running_server(url, metrics_listen="127.0.0.1:0", metrics_tenant_labels=3) as server:
            tenants = [await create_tenant(server) for _ in range(5)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter = meter_pb2_grpc.MeterStub(channel)
                for n, tenant in enumerate(tenants):
                    for _ in range(n + 1):  # tenant n records n + 1 calls: 15 in all
                        await meter.RecordCall(record(call_id=uuid.uuid4().hex), metadata=tenant.auth("record"))
            port = server.metrics_http.server_port
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read())
    finally:
        postgres.drop_database(url)
    text = body.decode()
    for family in ("meter_tenant_calls_recorded_total", "meter_tenant_tokens_recorded_total",
                   "meter_tenant_cost_recorded_usd_total"):  # fmt: skip
        values = set(re.findall(rf'^{family}{{[^}}]*tenant="([^"]*)"', text, re.M))
        assert len(values) == 3 and "other" in values, (family, values)
    named = [t.id for t in tenants if f'tenant="{t.id}"' in text]
    assert len(named) == 2
    assert series(text, "meter_tenant_calls_recorded_total") == 15 == series(text, "meter_calls_recorded_total")
    folded = series(text, "meter_tenant_calls_recorded_total", tenant="other")
    assert folded == 15 - sum(series(text, "meter_tenant_calls_recorded_total", tenant=t) for t in named)
    # The provider/model series keep their shape: no tenant label on them.
    assert not re.search(r"^meter_calls_recorded_total\{[^}]*tenant=", text, re.M)


def dashboard_exprs() -> list[str]:
    import json
    from pathlib import Path

    dash = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]


async def test_the_grafana_dashboard_queries_series_the_server_exports(scraped, tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    exported = {
        re.split(r"[{ ]", line, maxsplit=1)[0] for line in scraped.splitlines() if line and not line.startswith("#")
    }
    for family in re.findall(r"^# TYPE (\S+) ", scraped, re.M):  # declared, even before a first sample
        exported |= {family + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    for expr in exprs:
        for name in re.findall(r"\b((?:grpc|meter|process|python)_[a-z_]+)\{", expr):  # series, not labels
            assert name in exported, f"{name} (in {expr!r}) is not exported"
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI")
        pytest.skip("promtool not installed: PromQL syntax not checked")
    # Grafana's variables as Prometheus would see them, each expression as a recording rule.
    rules = tmp_path / "dashboard-rules.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(exprs):
        promql = expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        lines += [f"      - record: meter:dashboard_{i}", f"        expr: '{promql}'"]
    rules.write_text("\n".join(lines) + "\n")
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
