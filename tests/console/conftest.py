"""Fixtures for the console: a real Meter server on a clock the test drives, holding a known set of
calls, and the console (uvicorn, real port) in front of it on the same clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import grpc
import pytest
import uvicorn
from google.protobuf import duration_pb2, timestamp_pb2

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.waiting import eventually
from meterd.console.app import create_app

T0 = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)
MODELS = [
    ("openai", "gpt-4.1", 2_500_000),
    ("anthropic", "claude-sonnet-4", 3_300_000),
    ("google", "gemini-2.5-pro", 1_700_000),
]


def _ts(at: dt.datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(at)
    return t


def known_calls() -> list[meter_pb2.RecordCallRequest]:
    """Six days of calls: 3 models, 4 users, every 7th an error, client-supplied costs (exact sums);
    and fewer the week before."""
    calls = []
    for i in range(180):
        provider, model, unit = MODELS[i % 3]
        at = T0 - dt.timedelta(hours=1 + (i * 47) % (6 * 24), minutes=i % 60)
        calls.append(
            meter_pb2.RecordCallRequest(
                call_id=f"known-{i:03d}",
                subject=f"user:{i % 4}",
                provider=provider,
                model=model,
                operation="chat",
                labels={"conversation": f"conv-{i % 5}"},
                usage=common_pb2.Usage(input_tokens=1000 + i, output_tokens=200 + i, cached_read_tokens=100 * (i % 3)),
                latency=duration_pb2.Duration(nanos=(50 + 10 * (i % 40)) * 1_000_000),
                outcome=common_pb2.OUTCOME_ERROR if i % 7 == 0 else common_pb2.OUTCOME_SUCCESS,
                error_code="rate_limited" if i % 7 == 0 else "",
                occurred_at=_ts(at),
                cost_nanos=unit * (1 + i % 5),
            )
        )
    for i in range(36):  # the week before: the overview's "vs previous" has something to compare with
        provider, model, unit = MODELS[i % 3]
        calls.append(
            meter_pb2.RecordCallRequest(
                call_id=f"before-{i:03d}",
                subject=f"user:{i % 4}",
                provider=provider,
                model=model,
                usage=common_pb2.Usage(input_tokens=800, output_tokens=100),
                occurred_at=_ts(T0 - dt.timedelta(days=8, hours=3 * i)),
                cost_nanos=unit * 2,
            )
        )
    return calls


@pytest.fixture(scope="module")
def console_clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="module")
async def meter_env(postgres, console_clock):
    """(server, tenant, meter stub, admin stub) with the known calls, two limits and an alert rule."""
    url = postgres.create_database()
    try:
        async with running_server(url, clock=console_clock, sweep_interval=3600) as server:
            tenant = await create_tenant(server)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter = meter_pb2_grpc.MeterStub(channel)
                admin = admin_pb2_grpc.MeterAdminStub(channel)
                auth = tenant.auth()
                for lim in (
                    admin_pb2.Limit(
                        id="daily-spend",
                        description="all users, per day",
                        metric=common_pb2.METRIC_COST_NANOS,
                        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY),
                        max=2_000_000_000,
                        action=common_pb2.LIMIT_ACTION_DENY,
                        alert_thresholds_percent=[90],
                    ),
                    admin_pb2.Limit(
                        id="user-requests",
                        selector=common_pb2.Selector(subject_prefix="user:"),
                        metric=common_pb2.METRIC_REQUESTS,
                        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_MONTH),
                        max=1000,
                        partition=common_pb2.PARTITION_PER_SUBJECT,
                        action=common_pb2.LIMIT_ACTION_WARN,
                    ),
                ):
                    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=auth)
                await admin.SetAlertRule(
                    admin_pb2.SetAlertRuleRequest(
                        rule=admin_pb2.AlertRule(
                            id="big-call",
                            kind=common_pb2.ALERT_KIND_CALL_COST,
                            severity=common_pb2.SEVERITY_WARNING,
                            amount_nanos=500_000_000,
                        )
                    ),
                    metadata=auth,
                )
                reply = await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=known_calls()), metadata=auth)
                assert reply.failed == 0, reply
                yield server, tenant, meter, admin
    finally:
        postgres.drop_database(url)


@contextlib.asynccontextmanager
async def serving(app):
    """uvicorn in this event loop on a free port; yields the base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:

        def started() -> bool:
            if task.done():
                task.result()  # uvicorn failed to start: its error, not a timeout
            return server.started

        await eventually(started, within=10, what="the console's uvicorn server started")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def console_url(meter_env, console_clock):
    server = meter_env[0]
    async with serving(create_app(f"127.0.0.1:{server.port}", clock=console_clock)) as url:
        yield url
