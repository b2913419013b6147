"""The label and error-code rollup scenarios of `make bench` (issue 16): the generated calls' labels
are declared and rolled up (one day back-filled and timed), then GetUsage by a declared
label, top conversations, and error codes by provider are timed; `bot_raw` carries the same values as
`bot` but is not declared, so the raw-call answer is measured in the same run."""

from __future__ import annotations

import datetime as dt
import time

from bench.measure import Result

LABEL_TABLES = ("usage_label_hourly", "usage_label_daily", "usage_subject_daily")
DAY = 86_400


KEYS = ("conversation", "bot", "")  # "" is the error code

# The generated calls added to the label rollups in bulk, as the record path would have (every value
# is under the daily bound: about 480 conversations and 12 bots a day).
BUILD_HOURLY = """
INSERT INTO usage_label_hourly (tenant_id, label_key, hour, label_value, provider, model, operation, calls, errors,
                                input_tokens, output_tokens, cached_read_tokens, requests, cost_nanos, latency_count,
                                latency_sum_us, retry_count, latency_hist)
SELECT tenant_id, k, t, v, provider, model, operation, sum(n), sum(e), sum(it), sum(ot), sum(cr), sum(rq), sum(c),
       sum(n), sum(ls), sum(rc), jsonb_object_agg(b, n)
  FROM (SELECT tenant_id, d.k, date_trunc('hour', occurred_at, 'UTC') AS t,
               CASE WHEN d.k = '' THEN CASE WHEN success THEN '' ELSE error_code END
                    ELSE coalesce(labels ->> d.k, '') END AS v, provider, model, operation,
               least(127, floor(log(2, greatest(latency_us, 1)) * 4))::int AS b, count(*) AS n,
               count(*) FILTER (WHERE NOT success) AS e, sum(input_tokens) AS it, sum(output_tokens) AS ot,
               sum(cached_read_tokens) AS cr, sum(requests) AS rq, sum(cost_nanos) AS c, sum(latency_us) AS ls,
               sum(retry_count) AS rc
          FROM calls CROSS JOIN unnest(%(keys)s::text[]) AS d(k)
         WHERE tenant_id = %(tenant)s AND call_id LIKE 'gen-%%'
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) per_bucket
 GROUP BY tenant_id, k, t, v, provider, model, operation
"""
BUILD_DAILY = """
INSERT INTO usage_label_daily (tenant_id, label_key, day, label_value, provider, model, operation, calls, errors,
                               input_tokens, output_tokens, cached_read_tokens, requests, cost_nanos, latency_count,
                               latency_sum_us, retry_count, latency_hist)
SELECT tenant_id, label_key, date_trunc('day', hour, 'UTC'), label_value, provider, model, operation, sum(calls),
       sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(requests), sum(cost_nanos),
       sum(latency_count), sum(latency_sum_us), sum(retry_count), meter_sparse_hist_sum(latency_hist)
  FROM usage_label_hourly WHERE tenant_id = %(tenant)s
 GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
ADMITTED = """
INSERT INTO dimension_values (tenant_id, label_key, day, label_value)
SELECT DISTINCT tenant_id, label_key, day, label_value FROM usage_label_daily
 WHERE tenant_id = %(tenant)s AND label_value <> ''
"""


async def label_rollups_backfilled(url: str, conn, tenant: str) -> Result:
    """Declare conversation and bot, build their rollups and the error codes' in bulk, then time the
    back-fill (`meter dimensions backfill`) of one whole day of each, the day before yesterday."""
    from meterd.domain.dimensions import MAX_ERROR_CODES_PER_DAY
    from meterd.store.db import Database
    from meterd.store.label_rollups import LabelRollupStore

    await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
    await conn.execute(
        """INSERT INTO label_dimensions (tenant_id, label_key, max_values_per_day)
           VALUES (%s, 'conversation', 10000), (%s, 'bot', 10000) ON CONFLICT DO NOTHING""",
        (tenant, tenant),
    )
    for sql in (BUILD_HOURLY, BUILD_DAILY, ADMITTED):
        await conn.execute(sql, {"tenant": tenant, "keys": list(KEYS)})
    db = Database(url, min_size=1, max_size=1, statement_timeout=600.0)
    await db.open()
    timings = []
    try:
        store = LabelRollupStore(db)
        now = dt.datetime.now(dt.UTC)  # any-date: the generated calls are relative to now()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
        for key in KEYS:
            t0 = time.perf_counter()
            await store.backfill_day(tenant, key, day, MAX_ERROR_CODES_PER_DAY if key == "" else 10_000)
            timings.append(time.perf_counter() - t0)
        calls_per_day = (await (await conn.execute(
            "SELECT count(*) FROM calls WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at < %s",
            (tenant, day, day + dt.timedelta(days=1)),
        )).fetchone())[0]  # fmt: skip
    finally:
        await db.close()
    rows = (await (await conn.execute("SELECT count(*) FROM usage_label_daily")).fetchone())[0]
    timings.sort()
    return Result("label back-fill of one day (conversation, bot, error codes)", 1, len(KEYS), sum(timings),
                  timings[1] * 1e3, timings[-1] * 1e3, 0,
                  note=f"{calls_per_day:,} calls that day; {rows:,} daily label rows in all")  # fmt: skip


def label_requests(start, end) -> list[tuple[str, object]]:
    from google.protobuf import timestamp_pb2

    from meter.v1 import meter_pb2

    week = timestamp_pb2.Timestamp(seconds=end.seconds - 7 * DAY)

    def by_label(key: str, since, **fields):
        return meter_pb2.GetUsageRequest(
            start=since, end=end, group_by=[meter_pb2.GROUP_BY_LABEL], label_key=key, **fields
        )

    top = dict(order_by=meter_pb2.USAGE_ORDER_COST, descending=True, limit=10)
    return [
        ("GetUsage by declared label (bot), 30 days", by_label("bot", start)),
        ("GetUsage by undeclared label (bot_raw, raw calls), 30 days", by_label("bot_raw", start)),
        ("GetUsage top 10 conversations by cost, 7 days", by_label("conversation", week, **top)),
        ("GetUsage error codes by provider, 30 days", meter_pb2.GetUsageRequest(
            start=start, end=end, group_by=[meter_pb2.GROUP_BY_ERROR_CODE, meter_pb2.GROUP_BY_PROVIDER],
            order_by=meter_pb2.USAGE_ORDER_ERROR_RATE, descending=True)),
    ]  # fmt: skip
