"""The SQL of GetUsage's reads (store/usage.py runs it and decodes the rows).

domain.usage.plan_spans picks the rows that answer a GetUsage (see docs/usage.md):

* the rollups when labels are neither filtered nor grouped on and outcomes are not filtered: whole
  hours h with floor_hour(start) <= h < end, never a raw call scanned. Subject-free queries read
  usage_model_daily for whole days and usage_model_hourly for the edges (dense histograms, summed
  bucket by bucket); queries on subjects read usage_hourly (sparse histograms, summed per entry);
* calls (the raw rows) otherwise, since rollups carry no labels and cannot split a row's tokens, cost
  or latency histogram by outcome: the exact range [start, end). Each call's latency is put in the
  same histogram bucket as domain/histogram.bucket() does, so both sources report the same
  percentiles for the same calls.

Every source produces the same columns (k_* group keys, the sums, then the histogram as
latency_buckets or latency_hist), so ordering, limit and decoding are shared.
"""

from __future__ import annotations

from collections.abc import Sequence

from meterd.domain import histogram
from meterd.domain.usage import Dimension, Order, Source, Span, UsageFilter, UsageQuery
from meterd.store import rollups
from meterd.store.usage_filter import ERROR_VALUE, filter_sql, label_sql

_KEY_ALIASES = {
    Dimension.SUBJECT: "k_subject",
    Dimension.PROVIDER: "k_provider",
    Dimension.MODEL: "k_model",
    Dimension.OPERATION: "k_operation",
    Dimension.LABEL: "k_label",
    Dimension.TIME: "k_bucket",
    Dimension.ERROR_CODE: "k_error_code",
}

_LABEL_SOURCES = (Source.LABEL_HOURLY, Source.LABEL_DAILY)
_SUBJECT_SOURCES = (Source.SUBJECT_HOURLY, Source.SUBJECT_DAILY)

# Sums named like the columns they add up, the same in rollups and raw calls.
_COLUMN_SUMS = "".join(
    f"\n       coalesce(sum({c}), 0) AS {c},"
    for c in ("input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "reasoning_tokens",
              "requests", "units", "cost_nanos", "retry_count", *rollups.PART_COLUMNS)
)  # fmt: skip

# Summed figures of usage_hourly rows.
_ROLLUP_SUMS = f"""coalesce(sum(calls), 0) AS calls,
       coalesce(sum(errors), 0) AS errors,{_COLUMN_SUMS}
       coalesce(sum(unpriced_calls), 0) AS unpriced_calls,
       coalesce(sum(latency_count), 0) AS latency_count,
       coalesce(sum(latency_sum_us), 0) AS latency_sum_us"""

# The same figures from raw calls (the histogram is built separately, see _raw_sql).
_RAW_SUMS = f"""count(*) AS calls,
       count(*) FILTER (WHERE NOT success) AS errors,{_COLUMN_SUMS}
       count(*) FILTER (WHERE cost_source = 'unpriced') AS unpriced_calls,
       count(latency_us) AS latency_count,
       coalesce(sum(latency_us), 0) AS latency_sum_us"""

# domain/histogram.bucket() in SQL: bucket i holds [2^(i/4), 2^((i+1)/4)) µs; 0 and 1 µs in bucket 0.
# log(numeric, numeric) is exact enough that powers of two land on their own bucket boundary.
BUCKET_OF_LATENCY = (
    "CASE WHEN latency_us IS NOT NULL THEN least(127, floor(log(2, greatest(latency_us, 1)) * 4))::int END"
)

# The p95 bucket of a group, as domain/histogram.percentile() finds it (rank = max(1, ceil(q * n)),
# computed in float8 like Python does): only used to order rows by p95.
_P95_RANK = "greatest(1, ceil(0.95::float8 * g.latency_count::float8))"
_P95_DENSE = f"""(SELECT min(o) FROM (SELECT o, sum(n) OVER (ORDER BY o) AS seen
                        FROM unnest(g.latency_buckets) WITH ORDINALITY AS u(n, o)) s
         WHERE seen >= {_P95_RANK})"""
_P95_SPARSE = f"""(SELECT min(b) FROM (SELECT e.k::int AS b, sum(e.v::bigint) OVER (ORDER BY e.k::int) AS seen
                        FROM jsonb_each_text(g.latency_hist) AS e(k, v)) s
         WHERE seen >= {_P95_RANK})"""

_ORDER_METRICS = {
    Order.COST: "g.cost_nanos",
    Order.CALLS: "g.calls",
    Order.TOTAL_TOKENS: "(g.input_tokens + g.output_tokens + g.cached_read_tokens + g.cache_write_tokens)",
    Order.ERRORS: "g.errors",
    Order.LATENCY_P95: "p95_bucket",
    Order.ERROR_RATE: "(g.errors::float8 / nullif(g.calls, 0)::float8)",
}


# --- SQL builders (only fixed fragments are spliced in; every value is a parameter) ---------------


def _keys(group_by: Sequence[Dimension], time_column: str, source: Source = Source.CALLS) -> list[tuple[str, str]]:
    """(SQL expression, alias) of each group key."""
    out = []
    for d in group_by:
        if d in (Dimension.LABEL, Dimension.ERROR_CODE) and source in _LABEL_SOURCES:
            expr = "label_value"
        elif d is Dimension.ERROR_CODE:
            expr = ERROR_VALUE
        elif d is Dimension.LABEL:
            expr = "coalesce(labels ->> %(label_key)s, '')"  # a call without the label groups under ""
        elif d is Dimension.TIME:
            expr = f"date_trunc(%(bucket)s, {time_column}, 'UTC')"
        else:
            expr = str(d)  # the column of the same name
        out.append((expr, _KEY_ALIASES[d]))
    return out


def aggregate_sql(query: UsageQuery, group_by: Sequence[Dimension], spans: Sequence[Span]) -> str:
    """One row per group (a single row when group_by is empty): k_* keys, the sums, and the histogram,
    dense as latency_buckets (subject-free rollups) or sparse as latency_hist (the other sources)."""
    if query.raw:
        return _raw_sql(query, group_by)
    if spans[0].source.sparse:
        return _subject_sql(query, group_by, spans)
    return _model_sql(query, group_by, spans)


def span_params(spans: Sequence[Span], prefix: str = "s") -> dict:
    return {f"{prefix}{i}_{edge}": getattr(span, edge) for i, span in enumerate(spans) for edge in ("start", "end")}


def _rollup_rows(spans: Sequence[Span], f: UsageFilter, columns: str, prefix: str = "s", extra: str = "") -> str:
    """The rollup rows of every span, their hour or day as t (UNION ALL: the spans never overlap);
    `extra`, a fixed condition starting with AND, narrows them further."""
    pieces = []
    for i, span in enumerate(spans):
        t = "day" if span.source.daily else "hour"
        label = span.source in _LABEL_SOURCES
        subject = "subject, " if span.source in _SUBJECT_SOURCES else "label_value, " if label else ""
        pieces.append(
            f"""SELECT {t} AS t, {subject}provider, model, operation, {columns}
      FROM {span.source.value}
     WHERE tenant_id = %(tenant)s AND {t} >= %({prefix}{i}_start)s AND {t} < %({prefix}{i}_end)s"""
            + filter_sql(f, outcome=False, labels=not label)
            + (label_sql(f) if label else "")
            + extra
        )
    return "\n    UNION ALL\n    ".join(pieces)


def _keyed_rollup_rows(
    keys: list[tuple[str, str]], spans: Sequence[Span], f: UsageFilter, columns: str, extra: str = ""
) -> str:
    key_select = "".join(f"{expr} AS {alias}, " for expr, alias in keys)
    return f"SELECT {key_select}{columns}\n      FROM ({_rollup_rows(spans, f, columns, extra=extra)}) r"


_ROLLUP_FIGURES = """calls, errors, input_tokens, output_tokens, cached_read_tokens, cache_write_tokens,
           reasoning_tokens, requests, units, cost_nanos, unpriced_calls, latency_count, latency_sum_us, retry_count, """ + ", ".join(
    rollups.PART_COLUMNS
)
# A raw call's parts under the rollup column names (cost_parts is NULL for calls recorded before them).
_RAW_PARTS = "".join(f"coalesce(cost_parts[{i}], 0) AS {c}, " for i, c in enumerate(rollups.PART_COLUMNS, 1))

# Dense histograms summed bucket by bucket: 128 subscripts per row cost about a third of unnesting
# the arrays and regrouping their elements.
_DENSE_HISTOGRAM_SUM = (
    "ARRAY["
    + ", ".join(f"coalesce(sum(latency_buckets[{i}]), 0)::bigint" for i in range(1, histogram.BUCKETS + 1))
    + "] AS latency_buckets"
)

# Sparse histograms {"bucket": count} summed per group: their entries as (bucket, n) rows.
_SPARSE_BUCKETS = "e.k::int AS bucket, sum(e.v::bigint) AS n FROM f, jsonb_each_text(f.latency_hist) AS e(k, v)"


def _model_sql(query: UsageQuery, group_by: Sequence[Dimension], spans: Sequence[Span]) -> str:
    keys = _keys(group_by, "t", spans[0].source)
    group = f" GROUP BY {', '.join(alias for _, alias in keys)}" if keys else ""
    rows = _keyed_rollup_rows(keys, spans, query.filter, _ROLLUP_FIGURES + ", latency_buckets")
    return f"""SELECT {"".join(f"{alias}, " for _, alias in keys)}{_ROLLUP_SUMS},
       {_DENSE_HISTOGRAM_SUM}
  FROM ({rows}) k{group}"""


def _subject_sql(query: UsageQuery, group_by: Sequence[Dimension], spans: Sequence[Span]) -> str:
    keys = _keys(group_by, "t", spans[0].source)
    return _sums_and_histogram(
        [alias for _, alias in keys],
        rows=_keyed_rollup_rows(keys, spans, query.filter, _ROLLUP_FIGURES + ", latency_hist"),
        sums=_ROLLUP_SUMS,
        buckets=_SPARSE_BUCKETS + " GROUP BY {keys}e.k",
    )


# What ordering a top-N needs of each group (every _ORDER_METRICS but the p95): the first pass of
# _top_subject_sql sums only these, so ranking thousands of groups skips the other twenty sums.
_RANKING_COLUMNS = ("calls", "errors", "input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens",
                    "cost_nanos")  # fmt: skip


def _top_subject_sql(query: UsageQuery, spans: Sequence[Span], order: list[str]) -> str:
    """Groups of a sparse rollup, ordered by a sum and limited: the groups are ranked on the few sums
    the order needs, then every sum and the histogram are computed only for the groups kept (the
    top 10 users of thousands need 10 histograms)."""
    keys = _keys(query.group_by, "t", spans[0].source)
    aliases = ", ".join(alias for _, alias in keys)
    on = " AND ".join(f"f.{alias} = kept.{alias}" for _, alias in keys)
    # The second pass reads only the kept subjects' (or label values') rows, which the primary key
    # (tenant, hour, subject, ...) finds without reading every row again.
    kept = " AND subject IN (SELECT k_subject FROM kept)" if Dimension.SUBJECT in query.group_by else ""
    for d in (Dimension.LABEL, Dimension.ERROR_CODE):
        if d in query.group_by and spans[0].source in _LABEL_SOURCES:
            kept = f" AND label_value IN (SELECT {_KEY_ALIASES[d]} FROM kept)"
    ranking = ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in _RANKING_COLUMNS)
    return f"""WITH ranked AS (
    SELECT {aliases}, {ranking}
      FROM ({_keyed_rollup_rows(keys, spans, query.filter, ", ".join(_RANKING_COLUMNS))}) k
     GROUP BY {aliases}
), kept AS (
    SELECT {aliases} FROM ranked g ORDER BY {", ".join(order)} LIMIT %(limit)s
), f AS (
    SELECT f.* FROM ({_keyed_rollup_rows(keys, spans, query.filter, _ROLLUP_FIGURES + ", latency_hist", kept)}) f
      JOIN kept ON {on}
), sums AS (
    SELECT {aliases}, {_ROLLUP_SUMS} FROM f GROUP BY {aliases}
), hist AS (
    SELECT {aliases}, jsonb_object_agg(bucket, n) AS latency_hist
      FROM (SELECT {aliases}, {_SPARSE_BUCKETS} GROUP BY {aliases}, e.k) b
     GROUP BY {aliases}
)
SELECT g.*, hist.latency_hist
  FROM sums g LEFT JOIN hist USING ({aliases})
 ORDER BY {", ".join(order)}"""


def _raw_sql(query: UsageQuery, group_by: Sequence[Dimension]) -> str:
    keys = _keys(group_by, "occurred_at")
    return _sums_and_histogram(
        [alias for _, alias in keys],
        rows="SELECT "
        + "".join(f"{expr} AS {alias}, " for expr, alias in keys)
        + f"""success, input_tokens, output_tokens, cached_read_tokens, cache_write_tokens,
           reasoning_tokens, requests, units, cost_nanos, cost_source, latency_us, retry_count, {_RAW_PARTS}
           {BUCKET_OF_LATENCY} AS bucket
      FROM calls
     WHERE tenant_id = %(tenant)s AND occurred_at >= %(start)s AND occurred_at < %(end)s"""
        + filter_sql(query.filter, outcome=True),
        sums=_RAW_SUMS,
        buckets="bucket, count(*) AS n FROM f WHERE bucket IS NOT NULL GROUP BY {keys}bucket",
    )


def _sums_and_histogram(aliases: list[str], *, rows: str, sums: str, buckets: str) -> str:
    """One row per group: the keys, `sums` over the rows f (`rows`, a SELECT of the key aliases and
    the columns), and the group's sparse histogram latency_hist built from `buckets` (a select list and
    FROM clause yielding bucket, n; {keys} stands for the key aliases)."""
    key_list = "".join(f"{alias}, " for alias in aliases)
    group = f" GROUP BY {', '.join(aliases)}" if aliases else ""
    join = " AND ".join(f"sums.{a} = hist.{a}" for a in aliases) or "true"
    return f"""WITH f AS (
    {rows}
), sums AS (
    SELECT {key_list}{sums}
      FROM f{group}
), hist AS (
    SELECT {key_list}jsonb_object_agg(bucket, n) AS latency_hist
      FROM (SELECT {key_list}{buckets.format(keys=key_list)}) b{group}
)
SELECT sums.*, hist.latency_hist
  FROM sums LEFT JOIN hist ON {join}"""


def grouped_sql(query: UsageQuery, spans: Sequence[Span]) -> str:
    """The groups, ordered (ties and the default order by the keys, text in code-point order) and limited."""
    direction = "DESC" if query.descending else "ASC"
    keys = [f"g.{_KEY_ALIASES[d]}" + ("" if d is Dimension.TIME else ' COLLATE "C"') for d in query.group_by]
    if query.order is Order.KEYS:
        order = [f"{k} {direction}" for k in keys]
    else:
        # Groups without any latency (p95 NULL) come last either way.
        order = [f"{_ORDER_METRICS[query.order]} {direction} NULLS LAST", *keys]
    dense = not query.raw and not spans[0].source.sparse
    if query.order is not Order.LATENCY_P95 and not query.raw and not dense:
        return _top_subject_sql(query, spans, order)
    p95 = ""
    if query.order is Order.LATENCY_P95:
        p95 = f",\n       {_P95_DENSE if dense else _P95_SPARSE} AS p95_bucket"
    return f"""WITH g AS (
{aggregate_sql(query, query.group_by, spans)}
)
SELECT g.*{p95}
  FROM g
 ORDER BY {", ".join(order)}
 LIMIT %(limit)s"""


def projection_sql(query: UsageQuery, spans: Sequence[Span]) -> str:
    """Month-to-date cost, the basis period's cost, and when the filtered usage was first seen: the
    first instant (an hour or a day: only its day is used) inside the basis period, or `older` when
    there is usage before it. The bounds are whole days but the end, so daily rows fall wholly
    inside or outside each period."""
    filters = filter_sql(query.filter, outcome=True)
    if query.raw:
        rows = f"""SELECT occurred_at AS t, cost_nanos FROM calls
     WHERE tenant_id = %(tenant)s
       AND occurred_at >= least(%(month_start)s, %(basis_start)s)
       AND occurred_at < greatest(%(p_end)s, %(basis_end)s){filters}"""
        older = f"SELECT 1 FROM calls WHERE tenant_id = %(tenant)s AND occurred_at < %(basis_start)s{filters}"
    elif spans[0].source in _LABEL_SOURCES:
        rows = _rollup_rows(spans, query.filter, "cost_nanos", prefix="q")
        conditions = filter_sql(query.filter, outcome=False, labels=False) + label_sql(query.filter)
        older = f"SELECT 1 FROM usage_label_daily WHERE tenant_id = %(tenant)s AND day < %(basis_start)s{conditions}"
    else:
        rows = _rollup_rows(spans, query.filter, "cost_nanos", prefix="q")
        # Each hourly row has its daily counterpart (or the query reads the per-subject table), so
        # one table tells whether there is older usage.
        table, t = ("usage_hourly", "hour") if spans[0].source in _SUBJECT_SOURCES else ("usage_model_daily", "day")
        older = f"SELECT 1 FROM {table} WHERE tenant_id = %(tenant)s AND {t} < %(basis_start)s{filters}"
    return f"""SELECT coalesce(sum(cost_nanos) FILTER (WHERE t >= %(month_start)s AND t < %(p_end)s), 0) AS month_to_date,
       coalesce(sum(cost_nanos) FILTER (WHERE t >= %(basis_start)s AND t < %(basis_end)s), 0) AS basis_cost,
       min(t) FILTER (WHERE t >= %(basis_start)s AND t < %(basis_end)s) AS first_in_basis,
       EXISTS ({older}) AS older
  FROM ({rows}) r"""
