"""Recorded calls: the usage read (the write path is store/records.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.store.db import Database


@dataclasses.dataclass(frozen=True)
class RecordResult:
    call_id: str
    duplicate: bool
    cost_nanos: int
    cost_source: str
    price_id: str
    recorded_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class UsageTotals:
    calls: int
    successes: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    cost_nanos: int
    unpriced_calls: int
    latency_sum_us: int
    latency_count: int
    expired_reservations: int


class CallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def totals(self, tenant_id: str, start: dt.datetime, end: dt.datetime) -> UsageTotals:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT count(*) AS calls,
                          count(*) FILTER (WHERE success) AS successes,
                          count(*) FILTER (WHERE NOT success) AS errors,
                          coalesce(sum(input_tokens), 0) AS input_tokens,
                          coalesce(sum(output_tokens), 0) AS output_tokens,
                          coalesce(sum(cached_read_tokens), 0) AS cached_read_tokens,
                          coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
                          coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
                          coalesce(sum(requests), 0) AS requests,
                          coalesce(sum(units), 0) AS units,
                          coalesce(sum(cost_nanos), 0) AS cost_nanos,
                          count(*) FILTER (WHERE cost_source = 'unpriced') AS unpriced_calls,
                          coalesce(sum(latency_us), 0) AS latency_sum_us,
                          count(latency_us) AS latency_count,
                          (SELECT count(*) FROM reservations r WHERE r.tenant_id = %s AND r.state = 'expired'
                              AND r.created_at >= %s AND r.created_at < %s) AS expired_reservations
                   FROM calls WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at < %s""",
                (tenant_id, start, end, tenant_id, start, end),
            )
            row = await cur.fetchone()
        return UsageTotals(**{k: int(v) for k, v in row.items()})
