"""The bench's generated data set (bench/dataset.py) is what recording its calls would have built: GetUsage
answered from each rollup (subject hours and days, model grains, declared labels, error codes) equals
GetUsage answered from the raw calls, on a small instance of the same data."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import grpc
import psycopg
from google.protobuf import timestamp_pb2

from bench import dataset
from meter.v1 import meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import running_server
from meter_testing.rollups import assert_rollup_grains_agree

NOW = dt.datetime(2026, 3, 1, 0, 0, 30, tzinfo=dt.UTC)  # the 29 days cross a month end
N = 20_000
ADDITIVE = ("calls", "errors", "input_tokens", "output_tokens", "cached_read_tokens", "requests", "cost_nanos",
            "unpriced_calls", "retry_count")  # fmt: skip
G = meter_pb2


def ts(t: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def folded(rows, key) -> dict[tuple, Counter]:
    """Additive figures (and cost parts) per key, summed over the rows' other dimensions."""
    out: dict[tuple, Counter] = {}
    for r in rows:
        sums = out.setdefault(key(r.key), Counter())
        for f in ADDITIVE:
            sums[f] += getattr(r.stats, f)
        for f, v in r.stats.cost_breakdown.ListFields():
            if isinstance(v, int):
                sums[f"part:{f.name}"] += v
    return out


async def test_generated_rollups_answer_like_the_raw_calls(fresh_database_url):
    async with running_server(fresh_database_url, clock=FakeClock(NOW)) as server:
        _, key = await server.keys.create("bench", ["admin"])
        made = await dataset.generate(fresh_database_url, "bench", N, now=NOW)
        assert made.calls == N
        await assert_rollup_grains_agree(fresh_database_url)
        async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
            cur = await conn.execute(
                """SELECT (SELECT count(*) FROM calls WHERE tenant_id = 'bench'),
                          (SELECT count(DISTINCT provider) FROM calls), (SELECT count(DISTINCT subject) FROM calls),
                          (SELECT count(*) FROM calls WHERE NOT success AND error_code <> ''),
                          (SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_index i
                             JOIN pg_class c ON c.oid = i.indexrelid
                            WHERE c.relname IN ('calls_by_cost', 'calls_by_latency') AND i.indisvalid),
                          (SELECT tgenabled FROM pg_trigger WHERE tgname = 'calls_alerts'
                              AND tgrelid = 'calls'::regclass)"""
            )
            calls, providers, subjects, failed, indexes, trigger = await cur.fetchone()
        assert (calls, providers, subjects) == (N, 3, 1000) and failed > 100
        assert indexes == ["calls_by_cost", "calls_by_latency"] and trigger == "O"  # rebuilt valid, back on

        auth = (("authorization", f"Bearer {key}"),)
        start, end = ts(dt.datetime(2026, 1, 30, tzinfo=dt.UTC)), ts(NOW.replace(minute=0, second=0))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)

            async def usage(*group_by, **fields) -> list:
                request = G.GetUsageRequest(start=start, end=end, group_by=group_by, **fields)
                return list((await meter.GetUsage(request, metadata=auth)).rows)

            # Declared label (label rollups) against the same values undeclared (raw calls): every figure.
            by_bot = await usage(G.GROUP_BY_LABEL, label_key="bot")
            by_bot_raw = await usage(G.GROUP_BY_LABEL, label_key="bot_raw")
            assert len(by_bot) == 12
            assert [(r.key, r.stats) for r in by_bot] == [(r.key, r.stats) for r in by_bot_raw]

            # Grouping by bot_raw as well makes the raw calls answer; folded over it, the same sums.
            raw = G.GROUP_BY_LABEL
            # (GetUsage returns at most 1,000 rows: the subject checks take a subset of subjects.)
            some = {"filter": G.UsageFilter(subject_prefix="user:1")}
            one = {"filter": G.UsageFilter(subject="user:7"), "time_bucket": G.TIME_BUCKET_DAY}
            for rollup_groups, key_of, fields in (
                ((G.GROUP_BY_MODEL,), lambda k: (k.provider, k.model), {}),
                ((G.GROUP_BY_MODEL, G.GROUP_BY_TIME), lambda k: (k.model, k.bucket_start.seconds),
                 {"time_bucket": G.TIME_BUCKET_DAY}),
                ((G.GROUP_BY_SUBJECT,), lambda k: (k.subject,), some),
                ((G.GROUP_BY_TIME,), lambda k: (k.bucket_start.seconds,), one),
                ((G.GROUP_BY_ERROR_CODE, G.GROUP_BY_PROVIDER), lambda k: (k.error_code, k.provider), {}),
            ):  # fmt: skip
                from_rollups = folded(await usage(*rollup_groups, **fields), key_of)
                from_raw = folded(await usage(*rollup_groups, raw, label_key="bot_raw", **fields), key_of)
                assert from_rollups == from_raw and len(from_rollups) > 2, rollup_groups

            conversations = await usage(
                G.GROUP_BY_LABEL, label_key="conversation", order_by=G.USAGE_ORDER_COST, descending=True, limit=10
            )
            assert len(conversations) == 10 and all(r.key.label_value.startswith("conv-") for r in conversations)
