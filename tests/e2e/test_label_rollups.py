"""Label and error-code rollups over a real port against a real database: declared labels and error
codes are answered from rollups (whole hours), bounded per day with __other__, survive retention,
and a back-fill recomputes them from the raw calls still retained. Every figure is worked out by
hand from CALLS below."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import running_server
from meter_testing.processes import METER
from meter_testing.requests import record

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
OK, ERR = common_pb2.OUTCOME_SUCCESS, common_pb2.OUTCOME_ERROR


def at(month: int, day: int, hour: int, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


# (id, occurred_at, labels, cost, outcome, error_code, retries, provider) in recording order. With
# conversation bounded to 3 values a day, "d" and "e" (the 4th and 5th new values of 8 March) fold
# into __other__; a call without the label is "" (never folded).
CALLS = [
    ("old", at(11, 5, 10, 2025), {"conversation": "a", "bot": "x", "feature": "f1"}, 7, OK, "", 0, "openai"),
    ("a", at(3, 8, 9), {"conversation": "a", "bot": "x", "feature": "f1"}, 100, OK, "", 1, "openai"),
    ("b", at(3, 8, 9), {"conversation": "b", "bot": "x"}, 300, OK, "", 0, "openai"),
    ("c", at(3, 8, 10), {"conversation": "c", "bot": "y"}, 50, ERR, "429", 2, "openai"),
    ("d", at(3, 8, 11), {"conversation": "d", "bot": "y"}, 70, ERR, "429", 0, "openai"),
    ("e", at(3, 8, 12), {"conversation": "e"}, 5, ERR, "500", 0, "anthropic"),
    ("a2", at(3, 9, 13), {"conversation": "a", "bot": "x"}, 1000, OK, "", 0, "openai"),
    ("n", at(3, 9, 14), {}, 1, OK, "", 0, "openai"),
]
# 9 March is a new day: "a" is admitted again there (the bound is per day).
BY_CONVERSATION = [("a", 1107, 3), ("b", 300, 1), ("__other__", 75, 2), ("c", 50, 1), ("", 1, 1)]
BY_ERROR_RATE = [("429", "openai", 2, 2, 120), ("500", "anthropic", 1, 1, 5), ("", "openai", 5, 0, 1408)]
START = dt.datetime(2025, 11, 1, 0, 0, 30, tzinfo=dt.UTC)  # not a whole hour: rollups answer from 00:00


def calls_request(c) -> meter_pb2.RecordCallRequest:
    call_id, occurred, labels, cost, outcome, code, retries, provider = c
    return record(
        call_id, occurred_at=occurred, labels=labels, cost_nanos=cost, outcome=outcome, error_code=code,
        retry_count=retries, provider=provider, model="m-" + provider, subject=f"user:{call_id}",
    )  # fmt: skip


def usage(**fields) -> meter_pb2.GetUsageRequest:
    return meter_pb2.GetUsageRequest(start=START, end=NOW, **fields)


def by_label(key: str, **fields) -> meter_pb2.GetUsageRequest:
    return usage(group_by=[meter_pb2.GROUP_BY_LABEL], label_key=key, order_by=meter_pb2.USAGE_ORDER_COST,
                 descending=True, **fields)  # fmt: skip


def rows(reply) -> list[tuple]:
    return [(r.key.label_value, r.stats.cost_nanos, r.stats.calls) for r in reply.rows]


def meter_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    return subprocess.run([*METER, *args, "--database-url", url], capture_output=True, text=True, env=env, timeout=120)


async def test_declared_labels_and_error_codes_answer_from_rollups_through_retention_and_backfill(fresh_database_url):
    clock = FakeClock(NOW)
    async with running_server(fresh_database_url, clock=clock, backfill_horizon="400d") as server:
        _, key = await server.keys.create("dims", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            reply = await admin.SetLabelDimension(
                admin_pb2.SetLabelDimensionRequest(label_key="conversation", max_values_per_day=3), metadata=auth
            )
            assert reply.created and reply.dimension.max_values_per_day == 3
            await admin.SetLabelDimension(admin_pb2.SetLabelDimensionRequest(label_key="bot"), metadata=auth)
            listed = await admin.ListLabelDimensions(admin_pb2.ListLabelDimensionsRequest(), metadata=auth)
            assert [(d.label_key, d.max_values_per_day) for d in listed.dimensions] == [
                ("bot", 10_000),
                ("conversation", 3),
            ]
            for c in CALLS:  # one by one: the admission order is the recording order
                await meter.RecordCall(calls_request(c), metadata=auth)

            top = await meter.GetUsage(by_label("conversation"), metadata=auth)
            assert rows(top) == BY_CONVERSATION
            assert top.start.ToDatetime(dt.UTC) == START.replace(second=0)  # whole hours: rollups answered
            assert top.totals.cost_nanos == 1533 and top.totals.retry_count == 3
            limited = await meter.GetUsage(by_label("conversation", limit=2), metadata=auth)
            assert rows(limited) == BY_CONVERSATION[:2] and limited.totals.cost_nanos == 1533
            bots = await meter.GetUsage(
                by_label("bot", filter=meter_pb2.UsageFilter(labels={"bot": "y"})), metadata=auth
            )
            assert rows(bots) == [("y", 120, 2)] and bots.totals.errors == 2

            errors = await meter.GetUsage(
                usage(group_by=[meter_pb2.GROUP_BY_ERROR_CODE, meter_pb2.GROUP_BY_PROVIDER],
                      order_by=meter_pb2.USAGE_ORDER_ERROR_RATE, descending=True),
                metadata=auth,
            )  # fmt: skip
            got = [(r.key.error_code, r.key.provider, r.stats.calls, r.stats.errors, r.stats.cost_nanos)
                   for r in errors.rows]  # fmt: skip
            assert got == BY_ERROR_RATE and errors.start.ToDatetime(dt.UTC) == START.replace(second=0)
            assert [r.stats.retry_count for r in errors.rows] == [2, 0, 1]
            rate_limited = await meter.GetUsage(usage(filter=meter_pb2.UsageFilter(error_code="429")), metadata=auth)
            assert (rate_limited.totals.calls, rate_limited.totals.cost_nanos) == (2, 120)
            # An outcome filter with the error code reads raw calls (exact range) and agrees.
            raw_errors = await meter.GetUsage(
                usage(group_by=[meter_pb2.GROUP_BY_ERROR_CODE], filter=meter_pb2.UsageFilter(outcome=ERR)),
                metadata=auth,
            )
            assert [(r.key.error_code, r.stats.calls) for r in raw_errors.rows] == [("429", 2), ("500", 1)]
            assert raw_errors.start.ToDatetime(dt.UTC) == START

            # An undeclared label still reads the raw calls: the exact range.
            features = await meter.GetUsage(by_label("feature"), metadata=auth)
            assert rows(features) == [("", 1426, 6), ("f1", 107, 2)] and features.start.ToDatetime(dt.UTC) == START

            for request, code in (
                (admin_pb2.SetLabelDimensionRequest(label_key=""), grpc.StatusCode.INVALID_ARGUMENT),
                (admin_pb2.SetLabelDimensionRequest(label_key="k", max_values_per_day=100_001),
                 grpc.StatusCode.INVALID_ARGUMENT),
                (admin_pb2.DeleteLabelDimensionRequest(label_key="nope"), grpc.StatusCode.NOT_FOUND),
                (admin_pb2.BackfillLabelRollupsRequest(label_key="nope", start=START, end=NOW),
                 grpc.StatusCode.NOT_FOUND),
                (admin_pb2.BackfillLabelRollupsRequest(label_key="bot", error_codes=True, start=START, end=NOW),
                 grpc.StatusCode.INVALID_ARGUMENT),
                (admin_pb2.BackfillLabelRollupsRequest(label_key="bot"), grpc.StatusCode.INVALID_ARGUMENT),
            ):  # fmt: skip
                method = {"SetLabelDimensionRequest": admin.SetLabelDimension,
                          "DeleteLabelDimensionRequest": admin.DeleteLabelDimension,
                          "BackfillLabelRollupsRequest": admin.BackfillLabelRollups}[type(request).__name__]  # fmt: skip
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await method(request, metadata=auth)
                assert err.value.code() == code and len(err.value.details()) < 1000, request

    # Retention drops November 2025's raw calls; the label and error-code rollups keep answering.
    done = await asyncio.to_thread(
        meter_cli, fresh_database_url, "retention", "--older-than", "90d", "--now", NOW.isoformat()
    )
    assert done.returncode == 0 and "dropped" in done.stdout, done.stderr

    async with running_server(fresh_database_url, clock=clock, backfill_horizon="400d") as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            assert rows(await meter.GetUsage(by_label("conversation"), metadata=auth)) == BY_CONVERSATION
            features = await meter.GetUsage(by_label("feature"), metadata=auth)
            assert rows(features) == [("", 1426, 6), ("f1", 100, 1)]  # raw: the old call is gone

            # Declared after its calls were recorded: nothing in its rollups until a back-fill.
            await admin.SetLabelDimension(admin_pb2.SetLabelDimensionRequest(label_key="feature"), metadata=auth)
            assert rows(await meter.GetUsage(by_label("feature"), metadata=auth)) == []
            filled = await admin.BackfillLabelRollups(
                admin_pb2.BackfillLabelRollupsRequest(label_key="feature", start=START, end=NOW), metadata=auth
            )
            # From the day of the oldest retained call to NOW's day, whole days.
            assert (filled.start.ToDatetime(dt.UTC), filled.end.ToDatetime(dt.UTC), filled.days) == (
                at(3, 8, 0),
                at(3, 11, 0),
                3,
            )
            assert rows(await meter.GetUsage(by_label("feature"), metadata=auth)) == [("", 1426, 6), ("f1", 100, 1)]

    # Back-filling what the record path wrote gives the same rollups (admission by first call of the
    # day = recording order here); the November day, older than every retained call, is kept.
    for target in (("--key", "conversation"), ("--error-codes",)):
        out = await asyncio.to_thread(
            meter_cli, fresh_database_url, "dimensions", "backfill", *target, "--tenant", "dims",
            "--from", "2025-11-01", "--to", "2026-03-11",
        )  # fmt: skip
        assert out.returncode == 0 and "back-filled 3 days from 2026-03-08" in out.stdout, out.stderr
    listed = await asyncio.to_thread(meter_cli, fresh_database_url, "dimensions", "list", "--tenant", "dims")
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        ["bot", "max 10000/day"],
        ["conversation", "max 3/day"],
        ["feature", "max 10000/day"],
    ]
    async with running_server(fresh_database_url, clock=clock, backfill_horizon="400d") as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            assert rows(await meter.GetUsage(by_label("conversation"), metadata=auth)) == BY_CONVERSATION
            errors = await meter.GetUsage(
                usage(group_by=[meter_pb2.GROUP_BY_ERROR_CODE, meter_pb2.GROUP_BY_PROVIDER],
                      order_by=meter_pb2.USAGE_ORDER_ERROR_RATE, descending=True),
                metadata=auth,
            )  # fmt: skip
            got = [(r.key.error_code, r.key.provider, r.stats.calls, r.stats.errors, r.stats.cost_nanos)
                   for r in errors.rows]  # fmt: skip
            assert got == BY_ERROR_RATE


LABEL_VS_MODEL = """SELECT l.hour, l.provider, l.model, l.operation, l.calls, l.cost::bigint, l.hist
  FROM (SELECT hour, provider, model, operation, sum(calls) AS calls, sum(cost_nanos) AS cost,
               meter_sparse_hist_sum(latency_hist) AS hist
          FROM usage_label_hourly WHERE label_key = %s GROUP BY 1, 2, 3, 4) l
EXCEPT
SELECT hour, provider, model, operation, calls, cost_nanos::bigint,
       (SELECT coalesce(jsonb_object_agg((o - 1)::text, n), '{}') FROM unnest(latency_buckets) WITH ORDINALITY u(n, o)
         WHERE n <> 0)
  FROM usage_model_hourly"""
DAILY_VS_HOURLY = """SELECT tenant_id, label_key, date_trunc('day', hour, 'UTC'), label_value, provider, model, operation,
       sum(calls), sum(cost_nanos), meter_sparse_hist_sum(latency_hist)
  FROM usage_label_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7
EXCEPT
SELECT tenant_id, label_key, day, label_value, provider, model, operation, calls, cost_nanos, latency_hist
  FROM usage_label_daily"""


async def test_concurrent_records_admit_exactly_the_bound_and_every_call_once(fresh_database_url):
    import psycopg

    clock = FakeClock(NOW)
    async with running_server(fresh_database_url, clock=clock, batch_workers=4) as server:
        _, key = await server.keys.create("burst", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            await admin.SetLabelDimension(
                admin_pb2.SetLabelDimensionRequest(label_key="conversation", max_values_per_day=10), metadata=auth
            )
            requests = []
            for i in range(120):  # 60 distinct conversations, each twice, over two hours of one day
                r = record(f"b{i}", occurred_at=NOW - dt.timedelta(hours=1 + i % 2, minutes=i % 50),
                           labels={"conversation": f"v{i % 60:02d}"}, cost_nanos=10 + i,
                           outcome=ERR if i % 5 == 0 else OK, error_code=f"E{i % 3}" if i % 5 == 0 else "")  # fmt: skip
                r.latency.FromMicroseconds(1000 + i * 7919)
                requests.append(r)
            await asyncio.gather(*(meter.RecordCall(r, metadata=auth) for r in requests))
            reply = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=NOW - dt.timedelta(days=1), end=NOW,
                                          group_by=[meter_pb2.GROUP_BY_LABEL], label_key="conversation"),
                metadata=auth,
            )  # fmt: skip
    values = {r.key.label_value: r.stats.calls for r in reply.rows}
    assert len(values) == 11 and values.pop("__other__") + sum(values.values()) == 120
    assert all(n == 2 for n in values.values())  # an admitted value has both its calls, never one in __other__
    assert sum(r.stats.cost_nanos for r in reply.rows) == sum(10 + i for i in range(120)) == reply.totals.cost_nanos
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        for key in ("conversation", ""):  # every call once per key: the label rows sum to the model rows
            assert await (await conn.execute(LABEL_VS_MODEL, (key,))).fetchall() == []
        assert await (await conn.execute(DAILY_VS_HOURLY)).fetchall() == []
        counted = await (await conn.execute("SELECT label_key, n FROM dimension_value_counts ORDER BY 1")).fetchall()
        assert counted == [("", 3), ("conversation", 10)]
