"""GetUsage's reads: the statements of store/usage_sql.py, run in one REPEATABLE READ snapshot so
that rows, totals and projection agree with each other, and their rows decoded. The ListCalls
search is in store/call_search.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from meterd.domain import histogram
from meterd.domain.projection import ProjectionWindow
from meterd.domain.usage import UsageQuery, plan_spans
from meterd.domain.usage_results import Aggregate, UsageData, UsageKey, UsageRow, combine
from meterd.store import rollups
from meterd.store.db import Database, one
from meterd.store.usage_filter import filter_params, filter_sql
from meterd.store.usage_sql import aggregate_sql, grouped_sql, projection_sql, span_params


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def usage(
        self,
        tenant_id: str,
        query: UsageQuery,
        start: dt.datetime,
        end: dt.datetime,
        projection: ProjectionWindow | None,
    ) -> UsageData:
        """Rows (grouped, ordered, limited), totals and projection sums over the answered [start, end)."""
        params = filter_params(query.filter) | {
            "tenant": tenant_id,
            "start": start,
            "end": end,
            "label_key": query.label_key,
            "dim_key": query.dimension_key,
            "bucket": str(query.bucket) if query.bucket else None,
            "limit": query.limit,
        }
        spans = plan_spans(query, start, end)
        params |= span_params(spans)
        out = UsageData()
        async with self.db.transaction() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if query.group_by:
                cur = await conn.execute(grouped_sql(query, spans), params)
                out.rows = [UsageRow(_key(r), _aggregate(r)) for r in await cur.fetchall()]
            # Totals and the projection cover every filtered call whatever the grouping, so they may
            # read coarser rows than the groups (top users: the subject-free grains). Not when raw
            # calls answer: those answer the exact range, rollups whole hours.
            whole = query if query.raw else dataclasses.replace(query, group_by=())
            if query.group_by and len(out.rows) < query.limit:
                out.totals = combine([row.stats for row in out.rows])  # every group is there: no second pass
            else:
                whole_spans = plan_spans(whole, start, end)
                cur = await conn.execute(aggregate_sql(whole, (), whole_spans), params | span_params(whole_spans))
                out.totals = _aggregate(await one(cur))
            cur = await conn.execute(
                f"""SELECT count(*) AS n FROM reservations
                     WHERE tenant_id = %(tenant)s AND state = 'expired'
                       AND created_at >= %(start)s AND created_at < %(end)s{filter_sql(query.filter, outcome=False)}""",
                params,
            )
            out.expired_reservations = (await one(cur))["n"]
            if projection is not None:
                lo = min(projection.month_start, projection.basis_start)
                hi = max(projection.end, projection.basis_end)
                projection_spans = plan_spans(whole, lo, hi)
                cur = await conn.execute(
                    projection_sql(whole, projection_spans),
                    params
                    | span_params(projection_spans, "q")
                    | {
                        "p_end": projection.end,
                        "month_start": projection.month_start,
                        "basis_start": projection.basis_start,
                        "basis_end": projection.basis_end,
                    },
                )
                r = await one(cur)
                out.month_to_date_cost = int(r["month_to_date"])
                out.basis_cost = int(r["basis_cost"])
                out.first_seen = projection.basis_start if r["older"] else r["first_in_basis"]
        return out


# --- decoding -----------------------------------------------------------------------------------


def _int(value: int | Decimal | None) -> int:
    return int(value) if value is not None else 0


def _aggregate(r: dict) -> Aggregate:
    if "latency_hist" in r:
        buckets = histogram.from_sparse(r["latency_hist"] or {})
    else:
        buckets = r["latency_buckets"] or []
    return Aggregate(
        calls=_int(r["calls"]),
        errors=_int(r["errors"]),
        input_tokens=_int(r["input_tokens"]),
        output_tokens=_int(r["output_tokens"]),
        cached_read_tokens=_int(r["cached_read_tokens"]),
        cache_write_tokens=_int(r["cache_write_tokens"]),
        reasoning_tokens=_int(r["reasoning_tokens"]),
        requests=_int(r["requests"]),
        units=_int(r["units"]),
        cost_nanos=_int(r["cost_nanos"]),
        unpriced_calls=_int(r["unpriced_calls"]),
        latency_count=_int(r["latency_count"]),
        latency_sum_us=_int(r["latency_sum_us"]),
        retry_count=_int(r["retry_count"]),
        **{c: _int(r[c]) for c in rollups.PART_COLUMNS},
        latency_buckets=tuple(buckets) if any(buckets) else (),
    )


def _key(r: dict) -> UsageKey:
    """Only the grouped keys are columns of the row; the others stay None."""
    return UsageKey(
        subject=r.get("k_subject"),
        provider=r.get("k_provider"),
        model=r.get("k_model"),
        operation=r.get("k_operation"),
        label_value=r.get("k_label"),
        bucket_start=r.get("k_bucket"),
        error_code=r.get("k_error_code"),
    )
