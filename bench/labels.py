"""The label and error-code rollup scenarios of `make bench` (issue 16): the generated calls' labels
are declared and rolled up (bench/dataset.py; one day back-filled again and timed), then GetUsage by a declared
label, top conversations, and error codes by provider are timed; `bot_raw` carries the same values as
`bot` but is not declared, so the raw-call answer is measured in the same run."""

from __future__ import annotations

import datetime as dt
import time

from bench.measure import Result

DAY = 86_400


KEYS = ("conversation", "bot", "")  # "" is the error code


async def label_rollups_backfilled(url: str, conn, tenant: str) -> Result:
    """Time the back-fill (`meter dimensions backfill`) of one whole day of each declared dimension
    and the error codes, the day before yesterday (bench/dataset.py declared and back-filled them all)."""
    from meterd.domain.dimensions import MAX_ERROR_CODES_PER_DAY
    from meterd.store.db import Database
    from meterd.store.label_rollups import LabelRollupStore

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
