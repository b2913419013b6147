"""The bench's large usage data set (`make bench`'s 5M calls): raw calls and every rollup, built with
set-based SQL in minutes instead of the 40 it took to add them to one 5M-row statement's rollups.

Calls are generated one day at a time, each day's in time order (the primary key and calls_recent
grow at their right edge instead of taking random inserts), with the per-row alert trigger off (the
bench tenant has no call-cost rule) and the secondary search indexes rebuilt once at the end from a
sort. The subject-hour rollup is summed from the generated calls in one scan into a temporary table
and every rollup grain is added from it (ON CONFLICT adds: calls the bench recorded earlier in the run
stay counted); the declared-label and error-code rollups are built by the server's own back-fill
(LabelRollupStore.backfill_day, what `meter dimensions backfill` runs), so they hold exactly what the
server would have: the same admission of values, the same overflow. tests/e2e/test_bench_dataset.py
checks GetUsage answered from these rollups equals GetUsage answered from the raw calls.

The data: n calls over the last 29 days (ending an hour ago), 1,000 users, 8 models of 3 providers,
3 operations, costs uniform in [0, $0.02) split into input/output/cached parts, latencies in
[50 ms, 3.05 s), cached tokens on 3 calls in 4; a conversation lives one hour (20 an hour, about
14,000 in 29 days), 12 bots; 2% of calls fail with one of four error codes; every 7th call is retried
once. Labels `conversation` and `bot` are declared; `bot_raw` has bot's values, undeclared.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

import psycopg

from meterd.store.rollups import FIGURES, TABLES

DAYS = 29
DECLARED = {"conversation": 10_000, "bot": 10_000}
KEYS = ("conversation", "bot", "")  # "" is the error code
PREFIX = "gen-"
# model -> provider: three providers, every model priced by the catalog (GetRecommendations reads it).
MODELS = (
    ("gpt-4.1", "openai"), ("gpt-4.1-mini", "openai"), ("gpt-4o", "openai"), ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-20250514", "anthropic"), ("claude-3-5-haiku-latest", "anthropic"),
    ("gemini-2.5-pro", "google"), ("gemini-2.5-flash", "google"),
)  # fmt: skip
_MODEL_ARRAY = "ARRAY[" + ", ".join(f"'{m}'" for m, _ in MODELS) + "]"
_PROVIDER_ARRAY = "ARRAY[" + ", ".join(f"'{p}'" for _, p in MODELS) + "]"

# One day's calls: rows g in [first, last], times uniform in [since, since + 1 day), inserted in time order.
GENERATE_DAY = f"""
INSERT INTO calls (tenant_id, call_id, occurred_at, recorded_at, api_key_id, subject, provider, model, operation,
                   input_tokens, output_tokens, cached_read_tokens, requests, latency_us, success, cost_nanos,
                   cost_parts, cost_source, labels, error_code, retry_count)
SELECT %(tenant)s, '{PREFIX}' || g, t, now(), 'gen', 'user:' || (g %% 1000),
       ({_PROVIDER_ARRAY})[1 + g %% 8], ({_MODEL_ARRAY})[1 + g %% 8],
       (ARRAY['chat', 'embedding', 'tool'])[1 + g %% 3], it, ot, cr, 1, (50000 + random() * 3000000)::bigint, ok,
       cost, ARRAY[cost * 6 / 10, cost - cost * 6 / 10 - cost / 20, cost / 20, 0, 0, 0, 0, cost / 10], 'catalog',
       jsonb_build_object('conversation', 'conv-' || (extract(epoch FROM t)::bigint / 3600) || '-' || (g %% 20),
                          'bot', 'bot-' || (g %% 12), 'bot_raw', 'bot-' || (g %% 12)),
       CASE WHEN ok THEN '' ELSE (ARRAY['429', '500', '503', 'timeout'])[1 + g %% 4] END, (g %% 7 = 0)::int
  FROM (SELECT g, %(since)s + random() * interval '1 day' AS t, random() > 0.02 AS ok,
               (random() * 2000)::int AS it, (random() * 800)::int AS ot,
               CASE WHEN g %% 4 = 0 THEN 0 ELSE (random() * 300)::int END AS cr,
               (random() * 20000000)::bigint AS cost
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) s
 ORDER BY t, g
"""

# What RecordCall adds to the rollups for one call (as label_rollups' back-fill reads raw calls).
_RAW = {
    "calls": "1",
    "errors": "CASE WHEN success THEN 0 ELSE 1 END",
    "unpriced_calls": "CASE WHEN cost_source = 'unpriced' THEN 1 ELSE 0 END",
    "latency_count": "CASE WHEN latency_us IS NULL THEN 0 ELSE 1 END",
    "latency_sum_us": "coalesce(latency_us, 0)",
    **{c: f"coalesce(cost_parts[{i}], 0)" for i, (c, _) in enumerate(FIGURES[-8:], 1)},
}
_NAMES = [c for c, _ in FIGURES]
_BUCKET = "CASE WHEN latency_us IS NOT NULL THEN least(127, floor(log(2, greatest(latency_us, 1)) * 4))::int END"
# The generated calls summed per subject, hour and latency bucket: every grain is summed from these rows.
SUBJECT_BUCKETS = f"""
CREATE TEMPORARY TABLE gen_buckets AS
SELECT tenant_id, date_trunc('hour', occurred_at, 'UTC') AS hour, subject, provider, model, operation,
       {_BUCKET} AS bucket, count(*) FILTER (WHERE latency_us IS NOT NULL) AS n,
       {", ".join(f"sum({_RAW.get(c, c)}) AS {c}" for c in _NAMES)}
  FROM calls WHERE tenant_id = %(tenant)s AND call_id LIKE '{PREFIX}%%'
 GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


def add_grain_sql(table_index: int) -> str:
    """Adds gen_buckets to one rollup table of store.rollups.TABLES, summed to its grain."""
    table = TABLES[table_index]
    keys = list(table.key_columns)
    select = [("date_trunc('day', hour, 'UTC') AS day" if k == "day" else k) for k in keys]
    hist = table.histogram_column
    sparse = "coalesce(jsonb_object_agg(bucket, n) FILTER (WHERE bucket IS NOT NULL), '{}')"
    value, merge = (
        (sparse, f"meter_sparse_hist_add_v2(r.{hist}, excluded.{hist})")
        if table.sparse
        else (f"meter_hist_add_sparse(NULL, {sparse})", f"meter_hist_add(r.{hist}, excluded.{hist})")
    )
    updates = ",\n    ".join(f"{c} = r.{c} + excluded.{c}" for c in _NAMES)
    positions = ", ".join(str(i) for i in range(1, len(keys) + 1))
    return f"""
INSERT INTO {table.name} AS r ({", ".join(keys)}, {", ".join(_NAMES)}, {hist})
SELECT {", ".join(keys)}, {", ".join(f"sum({c})" for c in _NAMES)}, {value}
  FROM (SELECT {", ".join(select)}, bucket, sum(n) AS n, {", ".join(f"sum({c}) AS {c}" for c in _NAMES)}
          FROM gen_buckets GROUP BY {positions}, bucket) b
 GROUP BY {positions}
 ORDER BY {positions}
ON CONFLICT ({", ".join(keys)}) DO UPDATE SET
    {updates},
    {hist} = {merge}"""


@dataclass(frozen=True)
class Generated:
    calls: int
    seconds: float
    steps: dict[str, float]


async def _connect(url: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    # Bulk load only; not what is measured.
    await conn.execute("SET synchronous_commit = off")
    await conn.execute("SET work_mem = '256MB'")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


async def _timed(steps: dict[str, float], name: str, coro) -> None:
    t0 = time.perf_counter()
    await coro
    steps[name] = round(time.perf_counter() - t0, 1)


async def generate(url: str, tenant: str, n: int, *, now: dt.datetime) -> Generated:
    """n calls of `tenant` over the DAYS days before `now` - 1 hour, with every rollup."""
    from meterd.domain.dimensions import MAX_ERROR_CODES_PER_DAY
    from meterd.store.db import Database
    from meterd.store.label_rollups import LabelRollupStore

    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    end = now - dt.timedelta(hours=1)
    async with await _connect(url) as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
        await conn.execute("SELECT setseed(0.16)")
        cur = await conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'calls'
                AND indexname IN ('calls_by_cost', 'calls_by_latency')"""
        )
        rebuilt = await cur.fetchall()
        await conn.execute("ALTER TABLE calls DISABLE TRIGGER calls_alerts")
        try:
            for name, _ in rebuilt:
                await conn.execute(f"DROP INDEX {name}")
            t = time.perf_counter()
            first = 1
            for day in range(DAYS):
                last = n * (day + 1) // DAYS
                since = end - dt.timedelta(days=DAYS - day)
                await conn.execute(GENERATE_DAY, {"tenant": tenant, "first": first, "last": last, "since": since})
                first = last + 1
            steps["calls"] = round(time.perf_counter() - t, 1)
        finally:
            await conn.execute("ALTER TABLE calls ENABLE TRIGGER calls_alerts")
        await conn.execute(
            "INSERT INTO label_dimensions (tenant_id, label_key, max_values_per_day) "
            "SELECT %s, k, m FROM unnest(%s::text[], %s::int[]) AS d(k, m) ON CONFLICT DO NOTHING",
            (tenant, list(DECLARED), list(DECLARED.values())),
        )

        async def rollups() -> None:
            async with await _connect(url) as c:
                await _timed(steps, "subject buckets", c.execute(SUBJECT_BUCKETS, {"tenant": tenant}))
                for i in range(len(TABLES)):
                    await _timed(steps, TABLES[i].name, c.execute(add_grain_sql(i)))

        async def labels() -> None:
            db = Database(url, min_size=1, max_size=1, statement_timeout=3600.0)
            await db.open()
            try:
                store = LabelRollupStore(db)
                first_day = (end - dt.timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
                t = time.perf_counter()
                for d in range(DAYS + 2):
                    day = first_day + dt.timedelta(days=d)
                    for key in KEYS:
                        bound = MAX_ERROR_CODES_PER_DAY if key == "" else DECLARED[key]
                        await store.backfill_day(tenant, key, day, bound)
                steps["label back-fill"] = round(time.perf_counter() - t, 1)
            finally:
                await db.close()

        async def indexes() -> None:
            async with await _connect(url) as c:
                for name, definition in rebuilt:
                    # pg_indexes shows a partitioned index as "ON ONLY calls", which would make an
                    # invalid parent index without the partitions' ones.
                    await _timed(steps, name, c.execute(definition.replace(" ON ONLY ", " ON ", 1)))

        # Two CPUs: the three are independent (each reads calls, writes its own tables).
        await asyncio.gather(rollups(), labels(), indexes())
        t = time.perf_counter()
        for table in ("calls", *(t.name for t in TABLES), "usage_label_hourly", "usage_label_daily"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        steps["vacuum analyze"] = round(time.perf_counter() - t, 1)
    return Generated(n, time.perf_counter() - t0, steps)
