"""Retention prunes the label rollups' admitted values of days no call can be recorded into any
more (older than the day of now - back-fill horizon), at month and year ends: the rollups and
GetUsage by label answer the same, and the kept days still apply their bound."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import psycopg
import pytest

from e2e.test_label_rollups import meter_cli
from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.dates import FIXED_NOWS, date_id
from meter_testing.fixtures import running_server
from meter_testing.requests import record

HORIZON = dt.timedelta(days=30)
# A month end, a month start after February, a year end.
NOWS = [FIXED_NOWS[0], FIXED_NOWS[1], FIXED_NOWS[4]]


def rows(reply) -> list[tuple]:
    return sorted((r.key.label_value, r.stats.calls, r.stats.cost_nanos) for r in reply.rows)


async def admitted_days(url: str) -> dict[str, list[dt.datetime]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        out = {}
        for table in ("dimension_values", "dimension_value_counts"):
            cur = await conn.execute(f"SELECT DISTINCT day FROM {table} WHERE label_key = 'conversation' ORDER BY 1")
            out[table] = [r[0] for r in await cur.fetchall()]
        return out


async def rollup_rows(url: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            """SELECT 'h', hour, label_key, label_value, calls, cost_nanos FROM usage_label_hourly
               UNION ALL SELECT 'd', day, label_key, label_value, calls, cost_nanos FROM usage_label_daily
               ORDER BY 1, 2, 3, 4"""
        )
        return await cur.fetchall()


@pytest.mark.parametrize("now", NOWS, ids=date_id)
async def test_retention_prunes_admitted_values_of_days_no_call_can_reach(fresh_database_url, now):
    keep = now - HORIZON  # the oldest instant a call may still be recorded at: its day stays
    boundary = keep.replace(hour=0, minute=0, second=0, microsecond=0)
    old = boundary - dt.timedelta(hours=1)  # the day before: pruned
    # (occurred_at, conversation, cost): 2 values a day are admitted, the 3rd folds into __other__.
    calls = [(old, "a", 1), (old, "b", 2), (old, "c", 4), (keep, "x", 8), (keep, "y", 16), (keep, "z", 32),
             (now - dt.timedelta(minutes=1), "a", 64)]  # fmt: skip
    start, end = boundary - dt.timedelta(days=2), now
    request = meter_pb2.GetUsageRequest(
        start=start, end=end, group_by=[meter_pb2.GROUP_BY_LABEL], label_key="conversation"
    )
    clock = FakeClock(now)
    async with running_server(fresh_database_url, clock=clock, backfill_horizon="400d") as server:
        _, key = await server.keys.create("prune", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            await admin.SetLabelDimension(
                admin_pb2.SetLabelDimensionRequest(label_key="conversation", max_values_per_day=2), metadata=auth
            )
            for i, (at, value, cost) in enumerate(calls):
                await meter.RecordCall(
                    record(f"c{i}", occurred_at=at, labels={"conversation": value}, cost_nanos=cost), metadata=auth
                )
            before = rows(await meter.GetUsage(request, metadata=auth))
    assert before == [("__other__", 2, 36), ("a", 2, 65), ("b", 1, 2), ("x", 1, 8), ("y", 1, 16)]
    days = await admitted_days(fresh_database_url)
    assert boundary - dt.timedelta(days=1) in days["dimension_values"]
    rollups = await rollup_rows(fresh_database_url)

    done = await asyncio.to_thread(
        meter_cli, fresh_database_url, "retention", "--older-than", "400d", "--backfill-horizon", "30d",
        "--now", now.isoformat(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"pruned label admitted values before {boundary:%Y-%m-%d}" in done.stdout
    days = await admitted_days(fresh_database_url)
    for table, kept in days.items():
        assert kept and min(kept) == boundary, (table, kept)  # the old day went, the boundary day stayed
    assert await rollup_rows(fresh_database_url) == rollups

    async with running_server(fresh_database_url, clock=clock, backfill_horizon="30d") as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            assert rows(await meter.GetUsage(request, metadata=auth)) == before
            # The boundary day still knows its 2 admitted values: x is x, a new value is __other__.
            late = keep + dt.timedelta(seconds=1)
            for i, value in enumerate(("x", "w")):
                await meter.RecordCall(
                    record(f"late{i}", occurred_at=late, labels={"conversation": value}, cost_nanos=128),
                    metadata=auth,
                )
            after = rows(await meter.GetUsage(request, metadata=auth))
    assert after == [("__other__", 3, 164), ("a", 2, 65), ("b", 1, 2), ("x", 2, 136), ("y", 1, 16)]
