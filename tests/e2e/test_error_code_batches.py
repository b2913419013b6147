"""Mixed RecordCalls batches (successes, errors with and without a code, with and without declared
labels, over two hours and two days) answer GetUsage by error code, error rate and by label from the
rollups exactly as the raw calls (ListCalls) say: the record path pre-sums a batch per key, admits
values only when a batch carries some, and writes both grains in one statement."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import grpc

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import running_server
from meter_testing.requests import record

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
START, END = NOW - dt.timedelta(days=2, hours=5), NOW  # whole days from daily rows, the edges hourly
OK, ERR = common_pb2.OUTCOME_SUCCESS, common_pb2.OUTCOME_ERROR


def batch(rng: random.Random, n: int, first: int) -> list[meter_pb2.RecordCallRequest]:
    out = []
    for i in range(first, first + n):
        kind = rng.choice(["ok", "ok", "ok", "429", "500", "nocode"])
        labels = {"bot": f"b{rng.randrange(3)}"} if rng.random() < 0.6 else {}
        if rng.random() < 0.3:
            labels["undeclared"] = "u"
        r = record(f"call-{i}", occurred_at=NOW - dt.timedelta(hours=rng.choice([1, 2, 30, 50])),
                   outcome=OK if kind == "ok" else ERR, error_code=kind if kind in ("429", "500") else "",
                   labels=labels, cost_nanos=1 + rng.randrange(10**6), provider=rng.choice(["openai", "acme"]),
                   subject=f"user:{rng.randrange(5)}")  # fmt: skip
        r.latency.FromMicroseconds(1000 + rng.randrange(10**6))
        out.append(r)
    return out


async def raw(meter, auth) -> list[meter_pb2.CallRecord]:
    calls, token = [], ""
    while True:
        page = await meter.ListCalls(
            meter_pb2.ListCallsRequest(start=START, end=END, page_size=1000, page_token=token), metadata=auth
        )
        calls += page.calls
        token = page.next_page_token
        if not token:
            return calls


async def test_mixed_batches_answer_error_codes_and_error_rates_as_raw_calls_do(fresh_database_url):
    rng = random.Random(16)
    async with running_server(fresh_database_url, clock=FakeClock(NOW)) as server:
        _, key = await server.keys.create("mixed", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            await admin.SetLabelDimension(admin_pb2.SetLabelDimensionRequest(label_key="bot"), metadata=auth)
            successes_only = [r for r in batch(rng, 40, 0) if r.outcome == OK and not r.labels]
            reply = await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=successes_only), metadata=auth)
            assert reply.recorded == len(successes_only) > 0  # a batch with nothing to admit
            for first in (100, 200, 300):
                reply = await meter.RecordCalls(
                    meter_pb2.RecordCallsRequest(calls=batch(rng, 60, first)), metadata=auth
                )
                assert reply.recorded == 60
            calls = await raw(meter, auth)

            expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
            for c in calls:
                sums = expected[("" if c.outcome == OK else c.error_code, c.provider)]
                sums[0] += 1
                sums[1] += c.outcome != OK
                sums[2] += c.cost_nanos
            by_rate = sorted(expected.items(), key=lambda kv: (-kv[1][1] / kv[1][0], kv[0]))
            reply = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=START, end=END, order_by=meter_pb2.USAGE_ORDER_ERROR_RATE,
                                          group_by=[meter_pb2.GROUP_BY_ERROR_CODE, meter_pb2.GROUP_BY_PROVIDER],
                                          descending=True),
                metadata=auth,
            )  # fmt: skip
            got = [((r.key.error_code, r.key.provider), [r.stats.calls, r.stats.errors, r.stats.cost_nanos])
                   for r in reply.rows]  # fmt: skip
            assert got == by_rate
            assert [r.stats.error_rate for r in reply.rows] == [s[1] / s[0] for _, s in by_rate]
            assert reply.totals.calls == len(calls) == len(successes_only) + 180
            assert reply.start.ToDatetime(dt.UTC) == START  # whole hours: the rollups answered

            # Error codes alone, and one code as a filter.
            reply = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=START, end=END, group_by=[meter_pb2.GROUP_BY_ERROR_CODE]),
                metadata=auth,
            )
            codes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for (code, _), (n, errors, _) in expected.items():
                codes[code][0] += n
                codes[code][1] += errors
            assert {r.key.error_code: [r.stats.calls, r.stats.errors] for r in reply.rows} == codes
            reply = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=START, end=END, filter=meter_pb2.UsageFilter(error_code="429")),
                metadata=auth,
            )
            assert [reply.totals.calls, reply.totals.errors] == codes["429"]

            # The declared label over the same batches.
            reply = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=START, end=END, group_by=[meter_pb2.GROUP_BY_LABEL], label_key="bot"),
                metadata=auth,
            )
            bots: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
            for c in calls:
                sums = bots[c.labels.get("bot", "")]
                sums[0] += 1
                sums[1] += c.outcome != OK
                sums[2] += c.cost_nanos
            assert {r.key.label_value: [r.stats.calls, r.stats.errors, r.stats.cost_nanos] for r in reply.rows} == bots
