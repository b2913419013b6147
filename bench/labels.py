"""The label and error-code rollup scenarios of `make bench` (issue 16): the generated calls' labels
are declared and back-filled (what `meter dimensions backfill` does), then GetUsage by a declared
label, top conversations, and error codes by provider are timed; `bot_raw` carries the same values as
`bot` but is not declared, so the raw-call answer is measured in the same run."""

from __future__ import annotations

import datetime as dt
import time

from bench.measure import Result

LABEL_TABLES = ("usage_label_hourly", "usage_label_daily", "usage_subject_daily")
DAY = 86_400


async def label_rollups_backfilled(url: str, conn, tenant: str) -> Result:
    """Declare conversation and bot, and back-fill them and the error codes over the generated days."""
    from meterd.domain.dimensions import ERROR_CODE_KEY, MAX_ERROR_CODES_PER_DAY, backfill_days
    from meterd.store.db import Database
    from meterd.store.label_rollups import LabelRollupStore

    await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
    await conn.execute(
        """INSERT INTO label_dimensions (tenant_id, label_key, max_values_per_day)
           VALUES (%s, 'conversation', 10000), (%s, 'bot', 10000) ON CONFLICT DO NOTHING""",
        (tenant, tenant),
    )
    db = Database(url, min_size=1, max_size=1, statement_timeout=600.0)
    await db.open()
    try:
        store = LabelRollupStore(db)
        now = dt.datetime.now(dt.UTC)  # any-date: the generated calls are relative to now()
        days = backfill_days(now - dt.timedelta(days=31), now, await store.first_retained_call(tenant))
        t0 = time.perf_counter()
        for key, bound in (("conversation", 10_000), ("bot", 10_000), (ERROR_CODE_KEY, MAX_ERROR_CODES_PER_DAY)):
            for day in days:
                await store.backfill_day(tenant, key, day, bound)
        elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    rows = (await (await conn.execute("SELECT count(*) FROM usage_label_daily")).fetchone())[0]
    per_day = elapsed * 1000 / (3 * len(days))
    return Result("label back-fill, 3 dimensions", 1, 3 * len(days), elapsed, per_day, per_day, 0,
                  note=f"{len(days)} days each; {rows:,} daily label rows; p50 column: ms per dimension-day")  # fmt: skip


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
