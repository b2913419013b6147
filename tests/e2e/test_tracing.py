"""OpenTelemetry traces against a real server and database, spans caught by the SDK's in-memory
exporter: a server span per RPC, the group-commit batch under it, SQL under the batch; a client's
traceparent becomes the parent; a batch links to every request it serves."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import uuid

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2_grpc
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, limit, record
from meter_testing.waiting import eventually
from meterd.tracing import Tracing


@pytest.fixture(scope="module")
async def traced(postgres):
    exporter = InMemorySpanExporter()
    url = postgres.create_database()
    try:
        tracing = Tracing(processor=SimpleSpanProcessor(exporter))
        async with running_server(url, tracing=tracing) as server:
            tenant = await create_tenant(server)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                admin = admin_pb2_grpc.MeterAdminStub(channel)
                await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("rpm", max=1000)), metadata=tenant.auth())
                yield exporter, meter_pb2_grpc.MeterStub(channel), tenant, channel
    finally:
        postgres.drop_database(url)


def traceparent() -> tuple[str, int, int]:
    trace_id, span_id = secrets.randbits(128), secrets.randbits(64)
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


async def spans_of(exporter, trace_id: int, *, at_least: int):
    async def enough():
        spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        return spans if len(spans) >= at_least and any(s.kind is SpanKind.SERVER for s in spans) else None

    return await eventually(enough, what=f"{at_least} spans of the trace")


async def test_a_check_is_a_server_span_over_its_batch_over_its_sql_under_the_clients_trace(traced):
    exporter, meter, tenant, _ = traced
    header, trace_id, client_span_id = traceparent()
    reply = await meter.CheckQuota(check(), metadata=(*tenant.auth("check"), ("traceparent", header)))
    assert reply.allowed
    spans = await spans_of(exporter, trace_id, at_least=3)
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "/meter.v1.Meter/CheckQuota"
    assert server.parent is not None and server.parent.span_id == client_span_id and server.parent.is_remote
    (batch,) = [s for s in spans if s.name == "meter.check_batch"]
    assert batch.parent.span_id == server.context.span_id
    assert batch.attributes["meter.batch.size"] == 1
    assert [link.context.span_id for link in batch.links] == [server.context.span_id]
    # The batch's statements under it; look-ups before it (the key, the tenant's limits) under the RPC.
    sql = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert {s.parent.span_id for s in sql} <= {batch.context.span_id, server.context.span_id}
    assert any(s.parent.span_id == batch.context.span_id for s in sql)
    assert all(s.attributes.get("db.system") == "postgresql" or s.attributes.get("db.system.name") for s in sql)
    # Statement text only: the request's values (subject, key) never reach a span.
    assert not any("team:search" in str(s.attributes) for s in spans)
    assert not any(tenant.keys["check"] in str(s.attributes) for s in spans)


async def test_each_check_has_its_own_trace_and_a_shared_batch_links_to_every_request(traced):
    exporter, meter, tenant, _ = traced
    headers = [traceparent() for _ in range(20)]
    await asyncio.gather(
        *(meter.CheckQuota(check(), metadata=(*tenant.auth("check"), ("traceparent", h))) for h, _, _ in headers)
    )
    servers = {}
    for _, trace_id, _ in headers:
        spans = await spans_of(exporter, trace_id, at_least=1)
        (servers[trace_id],) = [s for s in spans if s.kind is SpanKind.SERVER]
    batches = [s for s in exporter.get_finished_spans() if s.name == "meter.check_batch"
               and s.context.trace_id in servers]  # fmt: skip
    # Every request is served by exactly one batch, which links to it; a batch lives in the trace of
    # one of the requests it serves (never in another RPC's trace, as a worker started by it would).
    linked = sorted(link.context.span_id for b in batches for link in b.links)
    assert linked == sorted(s.context.span_id for s in servers.values())
    for b in batches:
        assert b.parent.span_id in {link.context.span_id for link in b.links}
        assert b.attributes["meter.batch.size"] == len(b.links)


async def test_a_record_is_traced_and_health_checks_are_not(traced):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    exporter, meter, tenant, channel = traced
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    header, trace_id, _ = traceparent()
    await meter.RecordCall(record(call_id=uuid.uuid4().hex), metadata=(*tenant.auth("record"), ("traceparent", header)))
    spans = await spans_of(exporter, trace_id, at_least=3)
    names = {s.name for s in spans}
    assert {"/meter.v1.Meter/RecordCall", "meter.record_batch"} <= names
    assert not any(s.name.startswith("/grpc.health") for s in exporter.get_finished_spans())


def test_a_server_without_tracing_never_imports_opentelemetry():
    code = (
        "import sys, asyncio\n"
        "from meterd.app import MeterServer\n"
        "from meterd.config import Config\n"
        "MeterServer(Config.load({'listen': '127.0.0.1:0'}, environ={}), 'postgresql:///nowhere')\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
