"""GetUsage's forecast and the limits' projected exhaustion over a real port and database, at the
fixed server clock T0 = 2026-03-10 12:00 (tests/e2e/test_usage.py's CALLS)."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import duration_pb2

from e2e.conftest import T0
from e2e.test_usage import CALLS, at, record_all, request_for, usage
from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.alerts import AlertReader
from meter_testing.requests import check, field_violations, limit, record


@pytest.fixture
async def data(env):
    """(meter stub, tenant) with test_usage's CALLS recorded for a new tenant."""
    _, meter, _, tenant, _ = env
    await record_all(meter, tenant, (request_for(c) for c in CALLS))
    return meter, tenant


def days(n: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(dt.timedelta(days=n))
    return d


async def test_forecast_from_the_trailing_week(data):
    meter, tenant = data
    reply = await usage(meter, tenant, forecast_horizon=days(1))
    f = reply.forecast
    # The 7 days before T0 hold c04..c11: cost 400 + 0 + 35,000 + 0 + 5,000 + 12,000 + 4,000 + 1,000
    # = 57,400, 8 calls, tokens 4,000 + 100 + 3,000 + 0 + 2,000 + 2,300 + 600 + 20 = 12,020. The first
    # of them (c04, 5 March 13:45) starts the rate's window at 13:00: 119 hours before T0.
    assert f.basis_start.ToDatetime(dt.UTC) == at(5, 13)
    assert f.basis_end.ToDatetime(dt.UTC) == T0
    assert (f.basis_cost_nanos, f.basis_calls, f.basis_tokens) == (57_400, 8, 12_020)
    assert f.horizon_end.ToDatetime(dt.UTC) == T0 + dt.timedelta(days=1)
    # x 24/119, rounded down.
    assert (f.projected_cost_nanos, f.projected_calls, f.projected_tokens) == (11_576, 1, 2_424)
    # Without a horizon there is no forecast.
    assert not (await usage(meter, tenant)).HasField("forecast")


async def test_forecast_with_a_basis_and_a_filter(data):
    meter, tenant = data
    # 2 days before T0, openai only: c09 (12,000) and c10 (4,000) on 10 March, c11 (OpenAI, 1,000).
    # First usage 10 March 11:10: the window is the hour 11:00-12:00; 30 days is 720 of those hours.
    reply = await usage(
        meter,
        tenant,
        forecast_horizon=days(30),
        forecast_basis=days(2),
        filter=meter_pb2.UsageFilter(provider="openai"),
    )
    f = reply.forecast
    assert f.basis_start.ToDatetime(dt.UTC) == at(10, 11)
    assert (f.basis_cost_nanos, f.basis_calls) == (17_000, 3)
    assert (f.projected_cost_nanos, f.projected_calls) == (17_000 * 720, 3 * 720)
    # Labels filter: raw calls answer, the same rule. feature=search in 7 days: c05 (0) and c09 (12,000).
    # First usage c05, 5 March 13:50: from 13:00, 119 hours.
    labelled = await usage(
        meter, tenant, forecast_horizon=days(7), filter=meter_pb2.UsageFilter(labels={"feature": "search"})
    )
    assert (labelled.forecast.basis_cost_nanos, labelled.forecast.basis_calls) == (12_000, 2)
    assert labelled.forecast.projected_cost_nanos == 12_000 * 168 // 119


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(forecast_horizon=days(0)), "forecast_horizon"),
        (dict(forecast_horizon=days(401)), "forecast_horizon"),
        (dict(forecast_horizon=days(1), forecast_basis=days(91)), "forecast_basis"),
        (dict(forecast_horizon=days(1), forecast_basis=duration_pb2.Duration(seconds=60)), "forecast_basis"),
    ],
)
async def test_forecast_ranges(data, fields, field):
    meter, tenant = data
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await usage(meter, tenant, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value)


async def test_limit_statuses_say_when_the_limit_runs_out(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("daily", "REQUESTS", "DAY", 3))
    statuses = []
    for _ in range(3):
        reply = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
        statuses.append(reply.limits[0])
    # T0 is 12:00, 12 hours into the day. 1 request held: 2 more take 24 h, after the reset: unset.
    assert not statuses[0].HasField("projected_exhausted_at")
    # 2 held in 12 h: the third comes 6 h later.
    assert statuses[1].projected_exhausted_at.ToDatetime(dt.UTC) == T0 + dt.timedelta(hours=6)
    # At the max: now.
    assert statuses[2].projected_exhausted_at.ToDatetime(dt.UTC) == T0


async def test_projected_over_budget_alerts_once_per_window(env, clocked):
    server, meter, _, tenant, _ = env
    admin = clocked[2]
    for rule_id, budget in (("month-50", 50), ("month-60", 60)):
        r = admin_pb2.AlertRule(
            id=rule_id, kind=common_pb2.ALERT_KIND_PROJECTED_OVER_BUDGET, severity=common_pb2.SEVERITY_WARNING,
            window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_MONTH), amount_nanos=budget * 10**9,
        )  # fmt: skip
        await admin.SetAlertRule(admin_pb2.SetAlertRuleRequest(rule=r), metadata=tenant.auth())
    # $7 on 5 and on 9 March; $100 in February counts neither this month nor in the last 7 days.
    calls = [("b1", at(5, 10), 7), ("b2", at(9, 23), 7), ("b3", at(28, month=2), 100)]
    for call_id, when, usd in calls:
        await meter.RecordCall(
            record(call_id, occurred_at=when, cost_nanos=usd * 10**9), metadata=tenant.auth("record")
        )
    await server.evaluator.evaluate()
    await server.evaluator.evaluate()  # the same window: no second alert
    # Stored alerts are replayed before the first heartbeat: after it, every alert has arrived.
    reader = AlertReader(meter, tenant.auth("read"), since_id=0, heartbeat_interval={"seconds": 1})
    try:
        await reader.wait_for(lambda r: r.heartbeats)
    finally:
        await reader.close()
    # March so far $14; the 7 days before T0 cost $14, $2/day; 21.5 days left: $14 + $43 = $57.
    [alert] = reader.alerts
    assert (alert.rule_id, alert.kind) == ("month-50", common_pb2.ALERT_KIND_PROJECTED_OVER_BUDGET)
    assert (alert.observed, alert.threshold) == (57e9, 50e9)
    assert alert.window_start.ToDatetime(dt.UTC) == at(1) and alert.window_end.ToDatetime(dt.UTC) == at(1, month=4)
    assert "$14.00 so far" in alert.message and "$2.00/day" in alert.message


async def test_get_usage_reports_the_selected_limits_with_their_run_out(env):
    """include_limits: at T0 (12:00, half the day gone) a known rate gives a known run-out; a limit
    the filter excludes is absent; one that cannot run out in its window has no run-out."""
    _, meter, set_limits, tenant, _ = env
    await set_limits(
        limit("daily", "REQUESTS", "DAY", 3),  # 2 of 3 in 12 h: the third at 18:00
        limit("roomy", "REQUESTS", "DAY", 1000),  # 2 in 12 h: 998 more take 5,988 h, after the reset
        limit("cost-openai", "COST_NANOS", "MONTH", 10**12, selector={"provider": "OpenAI"}),
        limit("anthropic", "REQUESTS", "DAY", 5, selector={"provider": "anthropic"}),  # other provider
        limit("per-user", "REQUESTS", "HOUR", 4, partition="PER_SUBJECT"),  # 2 of 4 in 0 s of the hour
        limit("per-key", "REQUESTS", "DAY", 5, partition="PER_API_KEY"),  # no filter names a key
    )
    user = "team:search/user:42"
    for i in range(2):
        recorded = await meter.RecordCall(
            record(f"lim-{i}", subject=user, cost_nanos=1_000, usage=common_pb2.Usage(requests=1), occurred_at=T0),
            metadata=tenant.auth("record"),
        )
    by_id = {s.limit_id: s for s in recorded.limits}

    def request(**filter_fields) -> meter_pb2.GetUsageRequest:
        return meter_pb2.GetUsageRequest(include_limits=True, filter=meter_pb2.UsageFilter(**filter_fields))

    reply = await meter.GetUsage(request(provider="openai", subject=user), metadata=tenant.auth("read"))
    got = {s.limit_id: s for s in reply.limits}
    assert list(got) == ["cost-openai", "daily", "per-user", "roomy"]  # by id; anthropic and per-key absent
    daily = got["daily"]
    assert (daily.used, daily.remaining, daily.max) == (2, 1, 3)
    assert daily.window_start.ToDatetime(dt.UTC) == T0.replace(hour=0)
    assert daily.projected_exhausted_at.ToDatetime(dt.UTC) == T0 + dt.timedelta(hours=6)
    assert (got["roomy"].remaining, got["roomy"].HasField("projected_exhausted_at")) == (998, False)
    assert got["per-user"].partition == user and got["per-user"].used == 2
    # The same figures RecordCall answered with, by the same rule.
    for limit_id, status in got.items():
        assert status == by_id[limit_id], limit_id

    # Without a subject the per-subject limit has no single counter; another provider selects its own.
    others = await meter.GetUsage(request(provider="anthropic"), metadata=tenant.auth("read"))
    assert [s.limit_id for s in others.limits] == ["anthropic", "daily", "roomy"]
    assert others.limits[0].used == 0 and not others.limits[0].HasField("projected_exhausted_at")
    # Off by default.
    plain = await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    assert list(plain.limits) == []
