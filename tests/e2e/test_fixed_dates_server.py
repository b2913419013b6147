"""The server's date arithmetic under every fixed "now" of meter_testing.dates (month starts and
ends, a leap day, a year end and start), on a server whose clock is set to that date: a month
limit resets at the month's end and GetUsage's month-end projection covers that month."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.dates import FIXED_NOWS, date_id
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, limit, record

DAY = dt.timedelta(days=1)


def next_month_start(now: dt.datetime) -> dt.datetime:
    return (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + 32 * DAY).replace(day=1)


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
async def test_month_limit_and_projection_on_a_fixed_date(fresh_database_url, now):
    async with running_server(fresh_database_url, clock=FakeClock(now), sweep_interval=3600) as server:
        tenant = await create_tenant(server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            await admin.SetLimit(
                admin_pb2.SetLimitRequest(limit=limit("monthly", "REQUESTS", "MONTH", 1)), metadata=tenant.auth()
            )
            reply = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
            month_end = next_month_start(now)
            assert reply.allowed and reply.limits[0].reset_at.ToDatetime(dt.UTC) == month_end

            # One call a day for the 8 days before now and one a minute ago, 1,000 nanos each.
            times = [now - k * DAY for k in range(1, 9)] + [now - dt.timedelta(minutes=1)]
            for i, when in enumerate(times):
                await meter.RecordCall(record(f"d{i}", occurred_at=when, cost_nanos=1000), metadata=tenant.auth())
            usage = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=now - 40 * DAY, include_projection=True), metadata=tenant.auth("read")
            )
    p = usage.projection
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mtd = 1000 * sum(1 for when in times if when >= month_start)
    # The basis is the 7 full days before today: the calls of 1..7 days ago, and the one of a minute
    # ago when today began less than a minute ago.
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    basis = 1000 * sum(1 for when in times if today - 7 * DAY <= when < today)
    assert (p.month_to_date_cost_nanos, p.basis_days, p.daily_run_rate_cost_nanos) == (mtd, 7, basis // 7)
    # The rollups answer whole hours: the range, and so the projection, ends at the next full hour.
    hour = now.replace(minute=0, second=0, microsecond=0)
    answered_end = hour if hour == now else hour + dt.timedelta(hours=1)
    left_us = (month_end - answered_end) // dt.timedelta(microseconds=1)
    assert p.projected_month_cost_nanos == mtd + basis * left_us // (7 * 86_400_000_000)
    assert p.month_end.ToDatetime(dt.UTC) == month_end
    assert usage.totals.calls == len(times)
