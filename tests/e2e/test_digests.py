"""Scheduled report digests end to end: rules of kind REPORT_DIGEST (daily, weekly, monthly) on
two replicas sharing one database and one injected clock, delivered to a local Slack receiver at
fixed dates around a leap day and two month ends: the figures of `meter report` in dollars, one
digest per period (whichever replica leads), only the latest ended period after a gap."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.receivers import http_receiver
from meter_testing.requests import field_violations, record
from meter_testing.waiting import eventually

UTC = dt.UTC


def digest_rule(id: str, window: str, url: str) -> admin_pb2.SetAlertRuleRequest:
    return admin_pb2.SetAlertRuleRequest(
        rule=admin_pb2.AlertRule(
            id=id, kind=common_pb2.ALERT_KIND_REPORT_DIGEST, severity=common_pb2.SEVERITY_INFO,
            window=common_pb2.Window(kind=common_pb2.WindowKind.Value(f"WINDOW_KIND_{window}")),
            channels=[admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_SLACK, url=url)],
        )
    )  # fmt: skip


async def test_digests_reach_the_channel_once_per_period_at_month_ends_across_two_replicas(postgres):
    clock = FakeClock(dt.datetime(2028, 2, 29, 9, 0, tzinfo=UTC))  # a leap day, a Tuesday
    url = postgres.create_database()
    fast = {"alert_eval_interval": 0.2, "alert_poll_interval": 0.2, "sweep_interval": 3600}
    try:
        async with (
            http_receiver() as http,
            running_server(url, clock=clock, **fast) as one,
            running_server(url, clock=clock, **fast) as two,
        ):
            tenant = await create_tenant(one)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{one.port}") as channel:
                admin, meter = admin_pb2_grpc.MeterAdminStub(channel), meter_pb2_grpc.MeterStub(channel)
                for rule_id, window in (("daily", "DAY"), ("weekly", "WEEK"), ("monthly", "MONTH")):
                    await admin.SetAlertRule(digest_rule(rule_id, window, f"{http.base}/{rule_id}"),
                                             metadata=tenant.auth())  # fmt: skip
                for _ in range(2):  # $0.06 each, on the leap day
                    at = dt.datetime(2028, 2, 29, 8, 0, tzinfo=UTC)
                    await meter.RecordCall(record(occurred_at=at), metadata=tenant.auth("record"))

            async def texts(n: int) -> dict[str, list[str]]:
                async def arrived():
                    got = {p: [r.json()["text"] for r in http.at(f"/{p}")] for p in ("daily", "weekly", "monthly")}
                    return got if sum(map(len, got.values())) >= n else None

                return await eventually(arrived, within=20, what=f"{n} digests")

            async def settled(n: int) -> dict[str, list[str]]:
                """The n digests, then a few more rounds of both evaluators: nothing more comes."""
                got = await texts(n)
                rounds = one.evaluator.rounds + two.evaluator.rounds
                await eventually(lambda: one.evaluator.rounds + two.evaluator.rounds >= rounds + 6, what="rounds")
                assert sum(map(len, (await texts(n)).values())) == n
                return got

            # Set at 09:00 on the leap day: each rule sends its latest ended period at once.
            got = await settled(3)
            assert "Meter daily report, 2028-02-28 (UTC)" in got["daily"][0] and "Cost: $0.00" in got["daily"][0]
            assert "Meter weekly report, week of 2028-02-21 (UTC)" in got["weekly"][0]
            assert "Meter monthly report, January 2028 (UTC)" in got["monthly"][0]

            clock.set(dt.datetime(2028, 3, 1, 0, 5, tzinfo=UTC))  # the month ends
            got = await settled(5)
            leap_day = got["daily"][1]
            assert "Meter daily report, 2028-02-29 (UTC)" in leap_day
            assert "Cost: $0.12 (none the day before)" in leap_day and "Calls: 2 (none the day before)" in leap_day
            assert "Top models: gpt-4.1 $0.12 (100.0%)" in leap_day and "Top users: team:search/user:42" in leap_day
            assert "Meter monthly report, February 2028 (UTC)" in got["monthly"][1] and "$0.12" in got["monthly"][1]
            assert len(got["weekly"]) == 1  # the week of Feb 28 ends on Monday March 6

            clock.set(dt.datetime(2028, 3, 6, 0, 5, tzinfo=UTC))  # five days later: no backlog of dailies
            got = await settled(7)
            assert "2028-03-05" in got["daily"][2] and len(got["daily"]) == 3
            assert "Meter weekly report, week of 2028-02-28 (UTC)" in got["weekly"][1] and "$0.12" in got["weekly"][1]

            # Each went through the delivery rows: delivered once, outcome recorded.
            rows = await one.channels.store.states(tenant.id)
            assert len(rows) == 7 and all(r["delivered_at"] and r["attempts"] == 1 for r in rows)
            slack = http.at("/daily")[1].json()
            assert slack["blocks"][0]["text"]["text"] == "Meter INFO: report digest (rule daily)"
            assert "Threshold" not in str(slack["blocks"])
    finally:
        postgres.drop_database(url)


async def test_a_digest_rule_needs_a_period_and_covers_the_whole_tenant(meter_server):
    tenant = await create_tenant(meter_server)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{meter_server.port}") as channel:
        admin = admin_pb2_grpc.MeterAdminStub(channel)
        bad = digest_rule("d", "HOUR", "https://hooks.slack.com/services/x")
        bad.rule.scope.subject = "team:a"
        bad.rule.cooldown.seconds = 60
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.SetAlertRule(bad, metadata=tenant.auth())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert {"rule.window", "rule.scope", "rule.cooldown"} <= set(field_violations(err.value))
