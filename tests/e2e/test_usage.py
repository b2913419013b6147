"""GetUsage and ListCalls over a real port against a real database.

The server's clock is T0 = Tuesday 2026-03-10 12:00 UTC (tests/e2e/conftest.py), so the default range
is [2026-02-08 12:00, T0) and the projection's month is March 2026 with 21.5 days left. Every call has
an explicit occurred_at and a client-supplied cost, so each figure below is worked out by hand from
the CALLS table; a small reference aggregator checks the many group-by combinations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections import defaultdict

import grpc
import pytest
from google.protobuf import duration_pb2

from e2e.conftest import T0
from meter.v1 import common_pb2, meter_pb2
from meter_testing.requests import check, field_violations
from meterd.domain import histogram
from meterd.store.usage_sql import BUCKET_OF_LATENCY

G = meter_pb2  # GroupBy, TimeBucket and UsageOrder values


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Call:
    id: str
    at: dt.datetime
    subject: str
    provider: str
    model: str
    operation: str
    labels: dict
    input: int
    output: int
    cached_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    requests: int = 1
    units: int = 0
    latency_ms: int | None = None
    ok: bool = True
    cost: int | None = None  # None: no client cost (acme/brand-new has no price: unpriced)


SEARCH, CHAT = {"feature": "search"}, {"feature": "chat"}
# fmt: off
CALLS = [
    Call("c01", at(20, 10, 15, month=2), "team:a/u1", "openai", "gpt-4.1", "chat", SEARCH, 1000, 500, latency_ms=800, cost=10_000),
    Call("c02", at(2, 9, 30), "team:a/u1", "openai", "gpt-4.1", "chat", {"feature": "search", "env": "prod"}, 2000, 1000,
         cached_read=1000, latency_ms=1200, cost=20_000),
    Call("c03", at(3), "team:a/u2", "anthropic", "claude-sonnet-4", "chat", CHAT, 500, 250, cache_write=250,
         latency_ms=400, cost=7_000),
    Call("c04", at(5, 13, 45), "team:b/u3", "openai", "text-embedding-3", "embedding", {}, 4000, 0, latency_ms=50, cost=400),
    Call("c05", at(5, 13, 50), "team:b/u3", "openai", "gpt-4.1", "chat", SEARCH, 100, 0, latency_ms=3000, ok=False, cost=0),
    Call("c06", at(7, 23, 59, 59), "team:a/u1", "anthropic", "claude-sonnet-4", "chat", {"feature": "chat", "env": "prod"},
         300, 700, cached_read=2000, reasoning=200, latency_ms=2500, cost=35_000),
    Call("c07", at(8, 10), "team:a/u1", "acme", "brand-new", "image", {}, 0, 0, units=3, latency_ms=5000),
    Call("c08", at(9, 8), "team_b/u9", "google", "gemini-2.5", "chat", {"env": "dev"}, 1000, 1000, latency_ms=1000, ok=False,
         cost=5_000),
    Call("c09", at(10, 11, 10), "team:a/u2", "openai", "gpt-4.1", "chat", SEARCH, 1500, 300, cached_read=500,
         latency_ms=900, cost=12_000),
    Call("c10", at(10, 11, 20), "team:a/u2", "openai", "gpt-4.1", "chat", CHAT, 500, 100, requests=2, latency_ms=600,
         cost=4_000),
    Call("c11", at(10, 11, 59), "team:b/u3", "OpenAI", "gpt-4.1", "chat", {}, 10, 10, cost=1_000),  # no latency
]
# fmt: on
TOTAL_COST = 94_400


def ms(n: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(n)
    return d


def us(n: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMicroseconds(n)
    return d


def request_for(c: Call, **extra) -> meter_pb2.RecordCallRequest:
    r = meter_pb2.RecordCallRequest(
        call_id=c.id,
        subject=c.subject,
        provider=c.provider,
        model=c.model,
        operation=c.operation,
        labels=c.labels,
        usage=common_pb2.Usage(
            input_tokens=c.input,
            output_tokens=c.output,
            cached_read_tokens=c.cached_read,
            cache_write_tokens=c.cache_write,
            reasoning_tokens=c.reasoning,
            requests=c.requests,
            units=c.units,
        ),
        outcome=common_pb2.OUTCOME_SUCCESS if c.ok else common_pb2.OUTCOME_ERROR,
        error_code="" if c.ok else "upstream_error",
        occurred_at=c.at,
        **extra,
    )
    if c.latency_ms is not None:
        r.latency.CopyFrom(ms(c.latency_ms))
    if c.cost is not None:
        r.cost_nanos = c.cost
    return r


async def record_all(meter, tenant, requests) -> None:
    requests = list(requests)
    for i in range(0, len(requests), 500):
        reply = await meter.RecordCalls(
            meter_pb2.RecordCallsRequest(calls=requests[i : i + 500]), metadata=tenant.auth("record")
        )
        assert reply.failed == 0, [r.error_message for r in reply.results if r.error_code]


@pytest.fixture
async def data(env):
    """(meter stub, tenant) with CALLS recorded for a new tenant."""
    _, meter, _, tenant, _ = env
    await record_all(meter, tenant, (request_for(c) for c in CALLS))
    return meter, tenant


async def usage(meter, tenant, **fields) -> meter_pb2.GetUsageResponse:
    return await meter.GetUsage(meter_pb2.GetUsageRequest(**fields), metadata=tenant.auth("read"))


# --- the reference -------------------------------------------------------------------------------


def figures_of(calls) -> tuple:
    """(calls, errors, input, output, cached_read, cache_write, reasoning, requests, units, cost, unpriced)."""
    calls = list(calls)
    return (
        len(calls),
        sum(not c.ok for c in calls),
        sum(c.input for c in calls),
        sum(c.output for c in calls),
        sum(c.cached_read for c in calls),
        sum(c.cache_write for c in calls),
        sum(c.reasoning for c in calls),
        sum(c.requests for c in calls),
        sum(c.units for c in calls),
        sum(c.cost or 0 for c in calls),
        sum(c.cost is None for c in calls),
    )


def figures(s: meter_pb2.UsageStats) -> tuple:
    return (
        s.calls,
        s.errors,
        s.input_tokens,
        s.output_tokens,
        s.cached_read_tokens,
        s.cache_write_tokens,
        s.reasoning_tokens,
        s.requests,
        s.units,
        s.cost_nanos,
        s.unpriced_calls,
    )


def bucket_start(when: dt.datetime, bucket: int) -> dt.datetime:
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        G.TIME_BUCKET_HOUR: when.replace(minute=0, second=0, microsecond=0),
        G.TIME_BUCKET_DAY: day,
        G.TIME_BUCKET_WEEK: day - dt.timedelta(days=day.weekday()),
        G.TIME_BUCKET_MONTH: day.replace(day=1),
    }[bucket]


def key_of(c: Call, group_by, label_key: str = "", bucket: int = 0) -> tuple:
    parts = {
        G.GROUP_BY_SUBJECT: lambda: c.subject,
        G.GROUP_BY_PROVIDER: lambda: c.provider.lower(),
        G.GROUP_BY_MODEL: lambda: c.model,
        G.GROUP_BY_OPERATION: lambda: c.operation,
        G.GROUP_BY_LABEL: lambda: c.labels.get(label_key, ""),
        G.GROUP_BY_TIME: lambda: bucket_start(c.at, bucket),
    }
    return tuple(parts[g]() for g in group_by)


def row_key(row: meter_pb2.UsageRow, group_by) -> tuple:
    k = row.key
    parts = {
        G.GROUP_BY_SUBJECT: lambda: k.subject,
        G.GROUP_BY_PROVIDER: lambda: k.provider,
        G.GROUP_BY_MODEL: lambda: k.model,
        G.GROUP_BY_OPERATION: lambda: k.operation,
        G.GROUP_BY_LABEL: lambda: k.label_value,
        G.GROUP_BY_TIME: lambda: k.bucket_start.ToDatetime(dt.UTC),
    }
    return tuple(parts[g]() for g in group_by)


def expected_rows(calls, group_by, label_key="", bucket=0) -> dict[tuple, tuple]:
    groups = defaultdict(list)
    for c in calls:
        groups[key_of(c, group_by, label_key, bucket)].append(c)
    return {k: figures_of(v) for k, v in groups.items()}


def got_rows(reply, group_by) -> dict[tuple, tuple]:
    return {row_key(r, group_by): figures(r.stats) for r in reply.rows}


def cost_by(reply, group_by) -> dict[tuple, int]:
    return {row_key(r, group_by): r.stats.cost_nanos for r in reply.rows}


# --- totals, metrics, range ----------------------------------------------------------------------


async def test_totals_and_every_metric_over_the_default_range(data):
    meter, tenant = data
    reply = await usage(meter, tenant)
    assert reply.start.ToDatetime(dt.UTC) == T0 - dt.timedelta(days=30)
    assert reply.end.ToDatetime(dt.UTC) == T0
    assert not reply.rows and not reply.HasField("projection")
    t = reply.totals
    assert (t.calls, t.successes, t.errors) == (11, 9, 2)
    assert (t.input_tokens, t.output_tokens, t.cached_read_tokens, t.cache_write_tokens) == (10_910, 3_860, 3_500, 250)
    assert (t.reasoning_tokens, t.requests, t.units) == (200, 12, 3)
    assert (t.cost_nanos, t.unpriced_calls, t.expired_reservations) == (TOTAL_COST, 1, 0)
    assert figures(t) == figures_of(CALLS)
    assert t.error_rate == pytest.approx(2 / 11)
    # Cached-read share of all input: 3,500 / (10,910 + 3,500 + 250).
    assert t.cache_hit_rate == pytest.approx(3500 / 14_660)
    # All tokens: 10,910 + 3,860 + 3,500 + 250 = 18,520.
    assert t.cost_nanos_per_1k_tokens == pytest.approx(94_400 * 1000 / 18_520)
    # Ten calls carry a latency: 800 + 1200 + 400 + 50 + 3000 + 2500 + 5000 + 1000 + 900 + 600 = 15,450 ms.
    assert t.latency_avg.ToMilliseconds() == 1545
    assert t.output_tokens_per_second == pytest.approx(3860 / 15.45)
    # Sorted latencies (ms): 50 400 600 800 900 1000 1200 2500 3000 5000; p50 = 5th = 900,
    # p95 = p99 = 10th = 5000 — each reported within 9.05%.
    for got, exact in ((t.latency_p50, 900_000), (t.latency_p95, 5_000_000), (t.latency_p99, 5_000_000)):
        assert abs(got.ToMicroseconds() - exact) <= exact * histogram.MAX_RELATIVE_ERROR


async def test_rollups_answer_whole_hours_and_raw_calls_the_exact_range(data):
    meter, tenant = data
    # Rollups: 11:30..11:45 is answered as the whole 11:00 hour: c09, c10, c11.
    reply = await usage(meter, tenant, start=at(10, 11, 30), end=at(10, 11, 45))
    assert (reply.start.ToDatetime(dt.UTC), reply.end.ToDatetime(dt.UTC)) == (at(10, 11), at(10, 12))
    assert reply.totals.calls == 3 and reply.totals.cost_nanos == 17_000
    # An outcome filter reads raw calls: exactly [11:15, 11:50) holds only c10.
    raw = await usage(
        meter,
        tenant,
        start=at(10, 11, 15),
        end=at(10, 11, 50),
        filter=meter_pb2.UsageFilter(outcome=common_pb2.OUTCOME_SUCCESS),
    )
    assert (raw.start.ToDatetime(dt.UTC), raw.end.ToDatetime(dt.UTC)) == (at(10, 11, 15), at(10, 11, 50))
    assert raw.totals.calls == 1 and raw.totals.cost_nanos == 4_000
    # The range excludes its end: [c01's day, 3 March) holds c01 and c02 only.
    reply = await usage(meter, tenant, start=at(20, month=2), end=at(3))
    assert (reply.totals.calls, reply.totals.cost_nanos) == (2, 30_000)


async def test_raw_answers_keep_the_exact_range_in_totals_and_projection(data):
    """Grouping by label makes raw calls answer [start, 11:30) exactly; the totals (of groups cut by the
    limit) and the projection must not widen to the whole 11:00 hour, which holds c11 at 11:59."""
    meter, tenant = data
    reply = await usage(meter, tenant, start=at(1), end=at(10, 11, 30), group_by=[G.GROUP_BY_LABEL],
                        label_key="feature", limit=1, include_projection=True)  # fmt: skip
    assert len(reply.rows) == 1  # cut: the totals come from their own query
    # March before 11:30 on the 10th: every call but c01 (February) and c11 (11:59).
    assert reply.totals.calls == len(CALLS) - 2 and reply.totals.cost_nanos == TOTAL_COST - 10_000 - 1_000
    assert reply.projection.month_to_date_cost_nanos == TOTAL_COST - 10_000 - 1_000


# --- group by --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group_by, expected_cost",
    [
        (G.GROUP_BY_SUBJECT, {"team:a/u1": 65_000, "team:a/u2": 23_000, "team:b/u3": 1_400, "team_b/u9": 5_000}),
        (G.GROUP_BY_PROVIDER, {"acme": 0, "anthropic": 42_000, "google": 5_000, "openai": 47_400}),
        (
            G.GROUP_BY_MODEL,
            {
                "brand-new": 0,
                "claude-sonnet-4": 42_000,
                "gemini-2.5": 5_000,
                "gpt-4.1": 47_000,
                "text-embedding-3": 400,
            },
        ),
        (G.GROUP_BY_OPERATION, {"chat": 94_000, "embedding": 400, "image": 0}),
    ],
)
async def test_group_by_each_dimension(data, group_by, expected_cost):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=[group_by])
    assert cost_by(reply, [group_by]) == {(k,): v for k, v in expected_cost.items()}
    assert [row_key(r, [group_by]) for r in reply.rows] == sorted((k,) for k in expected_cost)  # keys ascending
    assert got_rows(reply, [group_by]) == expected_rows(CALLS, [group_by])
    assert reply.totals.cost_nanos == TOTAL_COST
    # Only the grouped field of a key is set.
    assert {f.name for r in reply.rows for f, _ in r.key.ListFields()} == {
        meter_pb2.GroupBy.Name(group_by).removeprefix("GROUP_BY_").lower()
    }


async def test_group_by_label_key_missing_label_is_empty_string(data):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_LABEL], label_key="feature")
    # search: c01 c02 c05 c09; chat: c03 c06 c10; none: c04 c07 c08 c11.
    assert cost_by(reply, [G.GROUP_BY_LABEL]) == {("",): 6_400, ("chat",): 46_000, ("search",): 42_000}
    assert [r.stats.calls for r in reply.rows] == [4, 3, 4]
    assert got_rows(reply, [G.GROUP_BY_LABEL]) == expected_rows(CALLS, [G.GROUP_BY_LABEL], "feature")
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_LABEL], label_key="env")
    assert cost_by(reply, [G.GROUP_BY_LABEL]) == {("",): 34_400, ("dev",): 5_000, ("prod",): 55_000}
    assert reply.totals.cost_nanos == TOTAL_COST and reply.totals.calls == 11


@pytest.mark.parametrize(
    "bucket, expected_cost",
    [
        (
            G.TIME_BUCKET_HOUR,
            {
                at(20, 10, month=2): 10_000,
                at(2, 9): 20_000,
                at(3, 0): 7_000,
                at(5, 13): 400,  # c04 + c05
                at(7, 23): 35_000,
                at(8, 10): 0,
                at(9, 8): 5_000,
                at(10, 11): 17_000,  # c09 + c10 + c11
            },
        ),
        (
            G.TIME_BUCKET_DAY,
            {
                at(20, month=2): 10_000,
                at(2): 20_000,
                at(3): 7_000,
                at(5): 400,
                at(7): 35_000,
                at(8): 0,
                at(9): 5_000,
                at(10): 17_000,
            },
        ),  # fmt: skip
        # Weeks start on Monday: 16 Feb, 2 March, 9 March.
        (G.TIME_BUCKET_WEEK, {at(16, month=2): 10_000, at(2): 62_400, at(9): 22_000}),
        (G.TIME_BUCKET_MONTH, {at(1, month=2): 10_000, at(1): 84_400}),
    ],
)
async def test_group_by_time_bucket(data, bucket, expected_cost):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_TIME], time_bucket=bucket)
    assert cost_by(reply, [G.GROUP_BY_TIME]) == {(k,): v for k, v in expected_cost.items()}
    assert [row_key(r, [G.GROUP_BY_TIME]) for r in reply.rows] == sorted((k,) for k in expected_cost)
    assert got_rows(reply, [G.GROUP_BY_TIME]) == expected_rows(CALLS, [G.GROUP_BY_TIME], bucket=bucket)


@pytest.mark.parametrize(
    "group_by, label_key, bucket",
    [
        ([G.GROUP_BY_SUBJECT, G.GROUP_BY_MODEL], "", 0),
        ([G.GROUP_BY_PROVIDER, G.GROUP_BY_TIME], "", G.TIME_BUCKET_DAY),
        ([G.GROUP_BY_LABEL, G.GROUP_BY_SUBJECT], "feature", 0),
        ([G.GROUP_BY_OPERATION, G.GROUP_BY_TIME, G.GROUP_BY_PROVIDER], "", G.TIME_BUCKET_MONTH),
        ([G.GROUP_BY_TIME, G.GROUP_BY_LABEL], "env", G.TIME_BUCKET_WEEK),
        (
            [G.GROUP_BY_SUBJECT, G.GROUP_BY_PROVIDER, G.GROUP_BY_MODEL, G.GROUP_BY_OPERATION, G.GROUP_BY_TIME],
            "",
            G.TIME_BUCKET_HOUR,
        ),
    ],
)
async def test_group_by_combinations(data, group_by, label_key, bucket):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=group_by, label_key=label_key, time_bucket=bucket)
    assert got_rows(reply, group_by) == expected_rows(CALLS, group_by, label_key, bucket)
    keys = [row_key(r, group_by) for r in reply.rows]
    assert keys == sorted(keys)
    assert reply.totals.cost_nanos == TOTAL_COST


async def test_subject_and_model_group_by_hand_computed(data):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT, G.GROUP_BY_MODEL])
    assert cost_by(reply, [G.GROUP_BY_SUBJECT, G.GROUP_BY_MODEL]) == {
        ("team:a/u1", "brand-new"): 0,
        ("team:a/u1", "claude-sonnet-4"): 35_000,
        ("team:a/u1", "gpt-4.1"): 30_000,
        ("team:a/u2", "claude-sonnet-4"): 7_000,
        ("team:a/u2", "gpt-4.1"): 16_000,
        ("team:b/u3", "gpt-4.1"): 1_000,
        ("team:b/u3", "text-embedding-3"): 400,
        ("team_b/u9", "gemini-2.5"): 5_000,
    }


# --- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter, ids",
    [
        (dict(subject="team:a/u2"), "c03 c09 c10"),
        (dict(subject_prefix="team:a/"), "c01 c02 c03 c06 c07 c09 c10"),
        # LIKE wildcards in a prefix are plain characters: "team_" is not "team" + any character.
        (dict(subject_prefix="team_"), "c08"),
        (dict(subject_prefix="team%"), ""),
        (dict(subject="team:a/u1", subject_prefix="team:b/"), ""),
        (dict(provider="OpenAI"), "c01 c02 c04 c05 c09 c10 c11"),  # c11 was recorded as "OpenAI"
        (dict(model="gpt-4.1"), "c01 c02 c05 c09 c10 c11"),
        (dict(operation="embedding"), "c04"),
        (dict(labels={"feature": "search"}), "c01 c02 c05 c09"),
        (dict(labels={"feature": "search", "env": "prod"}), "c02"),
        (dict(outcome=common_pb2.OUTCOME_ERROR), "c05 c08"),
        (dict(outcome=common_pb2.OUTCOME_SUCCESS), "c01 c02 c03 c04 c06 c07 c09 c10 c11"),
        (dict(provider="openai", outcome=common_pb2.OUTCOME_SUCCESS), "c01 c02 c04 c09 c10 c11"),
        (dict(subject_prefix="team:a/", model="claude-sonnet-4", labels={"env": "prod"}), "c06"),
    ],
)
async def test_filters(data, filter, ids):
    meter, tenant = data
    wanted = [c for c in CALLS if c.id in ids.split()]
    reply = await usage(meter, tenant, filter=meter_pb2.UsageFilter(**filter), group_by=[G.GROUP_BY_SUBJECT])
    assert figures(reply.totals) == figures_of(wanted)
    assert got_rows(reply, [G.GROUP_BY_SUBJECT]) == expected_rows(wanted, [G.GROUP_BY_SUBJECT])
    listed = await list_all(meter, tenant, filter=meter_pb2.UsageFilter(**filter), page_size=4)
    assert sorted(c.call_id for c in listed) == sorted(c.id for c in wanted)


async def test_error_filter_figures(data):
    meter, tenant = data
    reply = await usage(meter, tenant, filter=meter_pb2.UsageFilter(outcome=common_pb2.OUTCOME_ERROR))
    t = reply.totals
    assert (t.calls, t.successes, t.errors, t.error_rate, t.cost_nanos) == (2, 0, 2, 1.0, 5_000)
    assert t.latency_avg.ToMilliseconds() == 2000  # (3000 + 1000) / 2


# --- ordering and limit ----------------------------------------------------------------------------


async def test_top_users_by_cost_and_totals_ignore_the_limit(data):
    meter, tenant = data
    reply = await usage(
        meter, tenant, group_by=[G.GROUP_BY_SUBJECT], order_by=G.USAGE_ORDER_COST, descending=True, limit=2
    )
    assert [(r.key.subject, r.stats.cost_nanos) for r in reply.rows] == [("team:a/u1", 65_000), ("team:a/u2", 23_000)]
    assert reply.totals.cost_nanos == TOTAL_COST and reply.totals.calls == 11
    ascending = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT], order_by=G.USAGE_ORDER_COST, limit=1)
    assert [r.key.subject for r in ascending.rows] == ["team:b/u3"]
    assert ascending.totals.cost_nanos == TOTAL_COST


@pytest.mark.parametrize(
    "order, descending, subjects",
    [
        # calls: u1 4, u2 3, u3 3, u9 1 (ties by key ascending).
        (G.USAGE_ORDER_CALLS, True, ["team:a/u1", "team:a/u2", "team:b/u3", "team_b/u9"]),
        (G.USAGE_ORDER_CALLS, False, ["team_b/u9", "team:a/u2", "team:b/u3", "team:a/u1"]),
        # all tokens: u1 1,500 + 4,000 + 3,000 = 8,500; u3 4,120; u2 3,900; u9 2,000.
        (G.USAGE_ORDER_TOTAL_TOKENS, True, ["team:a/u1", "team:b/u3", "team:a/u2", "team_b/u9"]),
        # errors: u3 1, u9 1, u1 0, u2 0.
        (G.USAGE_ORDER_ERRORS, True, ["team:b/u3", "team_b/u9", "team:a/u1", "team:a/u2"]),
        # p95 (the slowest call of each): u1 5000 ms, u3 3000, u9 1000, u2 900. 900 and 1000 ms share
        # histogram bucket 79 (4 * log2 of 900,000 and 1,000,000 µs are 79.1 and 79.7): a tie, by key.
        (G.USAGE_ORDER_LATENCY_P95, True, ["team:a/u1", "team:b/u3", "team:a/u2", "team_b/u9"]),
        (G.USAGE_ORDER_LATENCY_P95, False, ["team:a/u2", "team_b/u9", "team:b/u3", "team:a/u1"]),
        (G.USAGE_ORDER_UNSPECIFIED, True, ["team_b/u9", "team:b/u3", "team:a/u2", "team:a/u1"]),
    ],
)
async def test_ordering(data, order, descending, subjects):
    meter, tenant = data
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT], order_by=order, descending=descending)
    assert [r.key.subject for r in reply.rows] == subjects


# --- projection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter, mtd, basis_cost, days",
    [
        # March so far: everything but c01. Basis 3..9 March: c03 c04 c05 c06 c07 c08 = 47,400; c01 and c02
        # are older, so all 7 days count.
        ({}, 84_400, 47_400, 7),
        # u2 first appears on 3 March (c03, at 00:00): 7 days.
        (dict(subject="team:a/u2"), 23_000, 7_000, 7),
        # u9 first appears on 9 March: 1 day of history.
        (dict(subject="team_b/u9"), 5_000, 5_000, 1),
        # u3 first appears on 5 March: 5, 6, 7, 8, 9 March.
        (dict(subject_prefix="team:b/"), 1_400, 400, 5),
        # Labels (raw calls): feature=chat is c03 c06 c10, first on 3 March.
        (dict(labels={"feature": "chat"}), 46_000, 42_000, 7),
    ],
)
async def test_projection(data, filter, mtd, basis_cost, days):
    meter, tenant = data
    reply = await usage(meter, tenant, include_projection=True, filter=meter_pb2.UsageFilter(**filter))
    p = reply.projection
    assert (p.month_to_date_cost_nanos, p.basis_days) == (mtd, days)
    assert p.daily_run_rate_cost_nanos == basis_cost // days
    # 21.5 days from T0 to 1 April: month_to_date + basis_cost / days * 21.5, rounded down.
    assert p.projected_month_cost_nanos == mtd + basis_cost * 43 // (2 * days)
    assert p.month_end.ToDatetime(dt.UTC) == at(1, month=4)


async def test_projection_hand_computed_and_without_history(data, make_clocked_tenant):
    meter, tenant = data
    p = (await usage(meter, tenant, include_projection=True)).projection
    # 47,400 / 7 = 6,771.43 a day; 84,400 + 47,400 * 21.5 / 7 = 84,400 + 145,585.71.
    assert (p.daily_run_rate_cost_nanos, p.projected_month_cost_nanos) == (6_771, 229_985)
    # A tenant whose only usage is today has no full day of history: no run-rate.
    fresh = await make_clocked_tenant()
    await record_all(meter, fresh, [request_for(dataclasses.replace(CALLS[-1], id="today", at=at(10, 9)))])
    p = (await usage(meter, fresh, include_projection=True)).projection
    assert (p.month_to_date_cost_nanos, p.daily_run_rate_cost_nanos, p.projected_month_cost_nanos) == (1000, 0, 1000)
    assert p.basis_days == 0


# --- isolation -------------------------------------------------------------------------------------


async def test_tenants_never_see_each_other(data, make_clocked_tenant):
    meter, tenant = data
    other = await make_clocked_tenant()
    await record_all(meter, other, [request_for(dataclasses.replace(CALLS[0], cost=777))])  # same call_id, subject
    mine = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT])
    theirs = await usage(meter, other, group_by=[G.GROUP_BY_SUBJECT], include_projection=True)
    assert mine.totals.cost_nanos == TOTAL_COST
    assert (theirs.totals.calls, theirs.totals.cost_nanos) == (1, 777)
    assert [(r.key.subject, r.stats.cost_nanos) for r in theirs.rows] == [("team:a/u1", 777)]
    assert theirs.projection.month_to_date_cost_nanos == 0  # c01 is in February
    raw = await usage(meter, other, filter=meter_pb2.UsageFilter(labels={"feature": "search"}))
    assert raw.totals.calls == 1
    assert [c.call_id for c in await list_all(meter, other)] == ["c01"]


async def test_expired_reservations_are_counted_in_totals_with_the_same_filters(env):
    server, meter, _, tenant, clock = env
    for subject in ("team:a/u1", "team:a/u1", "team:b/u3"):
        reply = await meter.CheckQuota(
            check(subject=subject, reservation_ttl={"seconds": 30}), metadata=tenant.auth("check")
        )
        assert reply.reservation_id
    clock.advance(seconds=31)
    assert await server.quota.store.expire(server.quota.db_time()) >= 3
    window = dict(start=T0 - dt.timedelta(hours=1), end=T0 + dt.timedelta(hours=1))
    assert (await usage(meter, tenant, **window)).totals.expired_reservations == 3
    for filter, n in ((dict(subject="team:a/u1"), 2), (dict(subject_prefix="team:b/"), 1), (dict(model="other"), 0)):
        reply = await usage(meter, tenant, filter=meter_pb2.UsageFilter(**filter), **window)
        assert reply.totals.expired_reservations == n
        assert (reply.totals.calls, reply.totals.cost_nanos) == (0, 0)  # released, never counted as spend
    earlier = await usage(meter, tenant, start=T0 - dt.timedelta(hours=2), end=T0 - dt.timedelta(hours=1))
    assert earlier.totals.expired_reservations == 0


# --- raw calls and rollups agree -------------------------------------------------------------------


def latencies(n: int, seed: int, scale: float) -> list[int]:
    rng = random.Random(seed)
    return [int(scale * rng.lognormvariate(math.log(200_000), 0.8)) + 10_000 for _ in range(n)]


@pytest.fixture
async def timed(env):
    """(meter, tenant, {subject: latencies µs}): 3 subjects × 100 calls over 3 days, all labelled
    src=bench, and 5 calls without a latency."""
    _, meter, _, tenant, _ = env
    by_subject = {f"s{i}": latencies(100, seed=i, scale=4**i) for i in range(3)}
    requests = []
    for subject, values in by_subject.items():
        for j, value in enumerate(values):
            r = meter_pb2.RecordCallRequest(
                call_id=f"{subject}-{j:03d}",
                subject=subject,
                provider="openai",
                model=("gpt-4.1", "gpt-4.1-mini")[j % 2],
                operation="chat",
                labels={"src": "bench"},
                usage=common_pb2.Usage(input_tokens=100 + j, output_tokens=j),
                latency=us(value),
                occurred_at=at(7 + j % 3, j % 24, j % 60),
                cost_nanos=1000 + j,
                outcome=common_pb2.OUTCOME_ERROR if j % 10 == 0 else common_pb2.OUTCOME_SUCCESS,
            )
            requests.append(r)
    for j in range(5):
        requests.append(
            meter_pb2.RecordCallRequest(
                call_id=f"nolat-{j}",
                subject="s9-nolatency",
                provider="openai",
                model="gpt-4.1",
                labels={"src": "bench"},
                usage=common_pb2.Usage(output_tokens=10),
                occurred_at=at(9, 12),
                cost_nanos=1,
            )
        )
    await record_all(meter, tenant, requests)
    return meter, tenant, by_subject


def exact_percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


async def test_percentiles_are_within_the_histogram_error_bound(timed):
    meter, tenant, by_subject = timed
    everything = [v for values in by_subject.values() for v in values]
    reply = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT])
    rows = {r.key.subject: r.stats for r in reply.rows}
    for stats, values in [(reply.totals, everything), *((rows[s], v) for s, v in by_subject.items())]:
        for q, got in ((0.5, stats.latency_p50), (0.95, stats.latency_p95), (0.99, stats.latency_p99)):
            exact = exact_percentile(values, q)
            assert abs(got.ToMicroseconds() - exact) <= exact * histogram.MAX_RELATIVE_ERROR + 1, (q, exact)
        assert stats.latency_avg.ToMicroseconds() == sum(values) // len(values)
    assert not rows["s9-nolatency"].HasField("latency_p50") and not rows["s9-nolatency"].HasField("latency_avg")
    # Ordered by p95: s2 (scale 16) > s1 (4) > s0 (1); groups without latencies last either way.
    for descending, expected in ((True, ["s2", "s1", "s0"]), (False, ["s0", "s1", "s2"])):
        ordered = await usage(
            meter, tenant, group_by=[G.GROUP_BY_SUBJECT], order_by=G.USAGE_ORDER_LATENCY_P95, descending=descending
        )
        assert [r.key.subject for r in ordered.rows] == [*expected, "s9-nolatency"]


@pytest.mark.parametrize(
    "group_by, bucket, order",
    [
        ([], 0, 0),
        ([G.GROUP_BY_SUBJECT], 0, G.USAGE_ORDER_LATENCY_P95),
        ([G.GROUP_BY_MODEL, G.GROUP_BY_SUBJECT], 0, G.USAGE_ORDER_COST),
        ([G.GROUP_BY_TIME], G.TIME_BUCKET_HOUR, G.USAGE_ORDER_TOTAL_TOKENS),
        ([G.GROUP_BY_TIME, G.GROUP_BY_PROVIDER], G.TIME_BUCKET_DAY, 0),
    ],
)
async def test_raw_calls_answer_like_the_rollups_for_the_same_calls(timed, group_by, bucket, order):
    meter, tenant, _ = timed
    common = dict(group_by=group_by, time_bucket=bucket, order_by=order, descending=True, include_projection=True)
    rollup = await usage(meter, tenant, **common)
    # A label filter every call matches sends the same query to raw calls (hour-aligned range: same calls).
    raw = await usage(meter, tenant, filter=meter_pb2.UsageFilter(labels={"src": "bench"}), **common)
    assert raw == rollup
    assert rollup.totals.calls == 305 and rollup.totals.latency_p95.ToMicroseconds() > 0
    # Grouping by a label also reads raw calls; src=bench is every call.
    by_label = await usage(meter, tenant, group_by=[G.GROUP_BY_LABEL], label_key="src")
    assert [r.key.label_value for r in by_label.rows] == ["bench"]
    assert by_label.rows[0].stats == by_label.totals == rollup.totals


async def test_label_grouping_sums_back_to_the_rollup_rows(data):
    meter, tenant = data
    by_label = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT, G.GROUP_BY_LABEL], label_key="feature")
    summed = defaultdict(lambda: [0] * 11)
    for r in by_label.rows:
        summed[r.key.subject] = [a + b for a, b in zip(summed[r.key.subject], figures(r.stats), strict=True)]
    rollup = await usage(meter, tenant, group_by=[G.GROUP_BY_SUBJECT])
    assert {k: tuple(v) for k, v in summed.items()} == {r.key.subject: figures(r.stats) for r in rollup.rows}
    assert by_label.totals == rollup.totals


async def test_sql_latency_bucket_matches_the_domain_histogram(env):
    server = env[0]
    values = list(range(0, 3000)) + [2**k + d for k in range(1, 45) for d in (-1, 0, 1)]
    values += [round(2 ** (i / 4)) + d for i in range(0, 140) for d in (-1, 0, 1)]
    values += random.Random(3).sample(range(1, 10**12), 2000)
    async with server.db.connection() as conn:
        cur = await conn.execute(
            f"SELECT latency_us, {BUCKET_OF_LATENCY} AS b FROM unnest(%s::bigint[]) AS u(latency_us)",
            (values,),
        )
        got = {r["latency_us"]: r["b"] for r in await cur.fetchall()}
    assert got == {v: histogram.bucket(v) for v in values}


# --- ListCalls -------------------------------------------------------------------------------------


async def list_all(meter, tenant, **fields) -> list[meter_pb2.CallRecord]:
    out, token, pages = [], "", 0
    while True:
        page = await meter.ListCalls(
            meter_pb2.ListCallsRequest(page_token=token, **fields), metadata=tenant.auth("read")
        )
        out.extend(page.calls)
        pages += 1
        assert pages < 1000
        if not page.next_page_token:
            return out
        token = page.next_page_token


def newest_first(records) -> list[tuple[dt.datetime, str]]:
    return [(c.occurred_at.ToDatetime(dt.UTC), c.call_id) for c in records]


async def test_list_calls_pages_every_call_exactly_once_newest_first(env):
    _, meter, _, tenant, _ = env
    # 5 instants × 5 calls each, so pages of 4 split calls of one instant.
    ids = [f"k{i}{j}" for i in range(5) for j in range(5)]
    await record_all(
        meter,
        tenant,
        (request_for(dataclasses.replace(CALLS[0], id=i, at=at(9, int(i[1])))) for i in ids),
    )
    for size in (1, 4, 5, 7, 25, 26):
        got = await list_all(meter, tenant, page_size=size)
        assert [c.call_id for c in got] == sorted(ids, key=lambda i: (-int(i[1]), i))
    first = await meter.ListCalls(meter_pb2.ListCallsRequest(page_size=25), metadata=tenant.auth("read"))
    assert len(first.calls) == 25 and first.next_page_token == ""
    # A time range bounds the listing: [01:00, 03:00) holds the calls of 01:00 and 02:00.
    ranged = await list_all(meter, tenant, start=at(9, 1), end=at(9, 3), page_size=3)
    assert [c.call_id for c in ranged] == [f"k{i}{j}" for i in (2, 1) for j in range(5)]


async def test_list_calls_default_page_is_50(timed):
    meter, tenant, _ = timed
    page = await meter.ListCalls(meter_pb2.ListCallsRequest(), metadata=tenant.auth("read"))
    assert len(page.calls) == 50 and page.next_page_token
    everything = await list_all(meter, tenant, page_size=1000)
    assert len(everything) == 305 == len({c.call_id for c in everything})
    keys = newest_first(everything)
    assert keys == sorted(keys, key=lambda k: (-k[0].timestamp(), k[1]))


async def test_list_calls_returns_every_field(env):
    _, meter, _, tenant, _ = env
    reserved = await meter.CheckQuota(
        check("RESERVE", subject="team:a/u1", estimate={"input_tokens": 10}), metadata=tenant.auth("check")
    )  # the record settles only a reservation of its own subject, provider, model and operation
    request = meter_pb2.RecordCallRequest(
        call_id="full",
        reservation_id=reserved.reservation_id,
        subject="team:a/u1",
        provider="OpenAI",
        model="gpt-4.1",
        operation="chat",
        labels={"feature": "search"},
        usage=common_pb2.Usage(
            input_tokens=1000, output_tokens=500, cached_read_tokens=200, cache_write_tokens=50, reasoning_tokens=30,
            requests=3, units=2,
        ),
        latency=ms(1500),
        time_to_first_token=ms(250),
        retry_count=2,
        outcome=common_pb2.OUTCOME_ERROR,
        error_code="rate_limit_exceeded",
        error_message="slow down",
        occurred_at=at(10, 11, 30, 15),
        metadata={"request_id": "req-1", "trace": "abc"},
    )  # fmt: skip
    recorded = await meter.RecordCall(request, metadata=tenant.auth("record"))
    assert recorded.reservation_settled
    plain = dataclasses.replace(CALLS[-1], id="plain", at=at(10, 11))
    await record_all(meter, tenant, [request_for(plain)])
    listed = await list_all(meter, tenant)
    assert [c.call_id for c in listed] == ["full", "plain"]
    c = listed[0]
    assert (c.subject, c.provider, c.model, c.operation) == ("team:a/u1", "openai", "gpt-4.1", "chat")
    assert dict(c.labels) == {"feature": "search"} and dict(c.metadata) == {"request_id": "req-1", "trace": "abc"}
    assert c.usage == request.usage
    assert (c.latency.ToMilliseconds(), c.time_to_first_token.ToMilliseconds(), c.retry_count) == (1500, 250, 2)
    assert (c.outcome, c.error_code, c.error_message) == (common_pb2.OUTCOME_ERROR, "rate_limit_exceeded", "slow down")
    assert c.occurred_at.ToDatetime(dt.UTC) == at(10, 11, 30, 15)
    assert c.recorded_at == recorded.recorded_at
    assert (c.cost_nanos, c.cost_source, c.price_id) == (
        recorded.cost_nanos,
        common_pb2.COST_SOURCE_CATALOG,
        recorded.price_id,
    )
    assert c.price_id and c.cost_nanos > 0
    assert c.reservation_id == reserved.reservation_id
    assert c.api_key_id == tenant.keys["record"].split("_")[1]
    p = listed[1]
    assert (p.outcome, p.cost_source, p.reservation_id, p.usage.requests) == (
        common_pb2.OUTCOME_SUCCESS, common_pb2.COST_SOURCE_CLIENT, "", 1
    )  # fmt: skip
    assert not p.HasField("latency") and not p.HasField("time_to_first_token")
    unpriced = dataclasses.replace(CALLS[6], id="unpriced", at=at(10, 10))
    await record_all(meter, tenant, [request_for(unpriced)])
    last = (await list_all(meter, tenant))[-1]
    assert (last.call_id, last.cost_source, last.cost_nanos, last.price_id) == (
        "unpriced", common_pb2.COST_SOURCE_UNPRICED, 0, ""
    )  # fmt: skip


async def test_invalid_page_tokens(data):
    meter, tenant = data
    first = await meter.ListCalls(meter_pb2.ListCallsRequest(page_size=2), metadata=tenant.auth("read"))
    assert first.next_page_token
    for request in (
        meter_pb2.ListCallsRequest(page_token="not-a-token"),
        meter_pb2.ListCallsRequest(page_token=first.next_page_token[:-3]),
        # A token only goes with the filter and range it came from.
        meter_pb2.ListCallsRequest(page_token=first.next_page_token, filter=meter_pb2.UsageFilter(model="gpt-4.1")),
        meter_pb2.ListCallsRequest(page_token=first.next_page_token, start=at(1)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await meter.ListCalls(request, metadata=tenant.auth("read"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(err.value)
    # The page size may change between pages.
    second = await meter.ListCalls(
        meter_pb2.ListCallsRequest(page_token=first.next_page_token, page_size=3), metadata=tenant.auth("read")
    )
    assert [c.call_id for c in (*first.calls, *second.calls)] == ["c11", "c10", "c09", "c08", "c07"]


# --- invalid requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(start=at(10), end=at(9)), "start"),
        (dict(start=at(10), end=at(10)), "start"),
        (dict(group_by=[G.GROUP_BY_LABEL]), "label_key"),
        (dict(group_by=[G.GROUP_BY_TIME]), "time_bucket"),
        (dict(group_by=[G.GROUP_BY_UNSPECIFIED]), "group_by"),
        (dict(limit=-1), "limit"),
        (dict(order_by=99), "order_by"),
        (dict(filter=meter_pb2.UsageFilter(outcome=7)), "filter.outcome"),
    ],
)
async def test_invalid_usage_requests(data, fields, field):
    meter, tenant = data
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await usage(meter, tenant, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value)


async def test_invalid_list_requests(data):
    meter, tenant = data
    for request, field in (
        (meter_pb2.ListCallsRequest(start=at(10), end=at(9)), "start"),
        (meter_pb2.ListCallsRequest(page_size=-1), "page_size"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await meter.ListCalls(request, metadata=tenant.auth("read"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(err.value)
