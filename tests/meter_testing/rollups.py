"""The rollup grains agree: usage_model_hourly and usage_model_daily are usage_hourly summed over subjects,
usage_subject_daily summed over hours."""

from __future__ import annotations

import psycopg

from meterd.store.rollups import PART_COLUMNS

# usage_hourly's histograms are sparse jsonb, the coarser tables' dense arrays.
_FIGURES = """sum(calls), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_read_tokens),
              sum(cache_write_tokens), sum(reasoning_tokens), sum(requests), sum(units), sum(cost_nanos),
              sum(unpriced_calls), sum(latency_count), sum(latency_sum_us),
              meter_hist_sum(meter_hist_add_sparse(NULL, latency_hist)), """ + ", ".join(
    f"sum({c})" for c in PART_COLUMNS
)
_COLUMNS = """calls, errors, input_tokens, output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
              requests, units, cost_nanos, unpriced_calls, latency_count, latency_sum_us, latency_buckets, """ + ", ".join(
    PART_COLUMNS
)

_SPARSE_FIGURES = _FIGURES.replace(
    "meter_hist_sum(meter_hist_add_sparse(NULL, latency_hist))", "meter_sparse_hist_sum(latency_hist)"
)
_SPARSE_COLUMNS = _COLUMNS.replace("latency_buckets", "latency_hist")

# Rows of `expected` missing from `actual` and the reverse; both empty when the grains agree.
_DIFFERENCE = """WITH expected AS ({expected}), actual AS ({actual})
SELECT 'missing' AS side, * FROM (TABLE expected EXCEPT ALL TABLE actual) m
UNION ALL
SELECT 'extra', * FROM (TABLE actual EXCEPT ALL TABLE expected) x"""

CHECKS = {
    "usage_model_hourly": _DIFFERENCE.format(
        expected=f"SELECT tenant_id, hour, provider, model, operation, {_FIGURES} FROM usage_hourly GROUP BY 1, 2, 3, 4, 5",
        actual=f"SELECT tenant_id, hour, provider, model, operation, {_COLUMNS} FROM usage_model_hourly",
    ),
    "usage_model_daily": _DIFFERENCE.format(
        expected=f"""SELECT tenant_id, date_trunc('day', hour, 'UTC'), provider, model, operation, {_FIGURES}
                       FROM usage_hourly GROUP BY 1, 2, 3, 4, 5""",
        actual=f"SELECT tenant_id, day, provider, model, operation, {_COLUMNS} FROM usage_model_daily",
    ),
    # migrations/0012: sparse histograms on both sides.
    "usage_subject_daily": _DIFFERENCE.format(
        expected=f"""SELECT tenant_id, date_trunc('day', hour, 'UTC'), subject, provider, model, operation,
                              {_SPARSE_FIGURES} FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6""",
        actual=f"SELECT tenant_id, day, subject, provider, model, operation, {_SPARSE_COLUMNS} FROM usage_subject_daily",
    ),
}


async def rollup_grain_differences(database_url: str) -> dict[str, list]:
    """Per coarse table, the rows where it disagrees with usage_hourly summed (empty lists: all agree)."""
    out = {}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for table, sql in CHECKS.items():
            out[table] = await (await conn.execute(sql)).fetchall()
    return out


async def assert_rollup_grains_agree(database_url: str) -> None:
    differences = await rollup_grain_differences(database_url)
    assert differences == {table: [] for table in CHECKS}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        coarse = await (await conn.execute("SELECT count(*) FROM usage_model_daily")).fetchone()
    assert coarse[0] > 0, "no rollups to compare"
