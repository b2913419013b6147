"""ListCalls: the SQL of a search (minimums, order, keyset paging). See domain/call_search.py.

Each order has an index led by tenant_id that returns the calls already sorted (migration 0013:
calls_by_cost, calls_by_latency; calls_recent for newest first), so a page reads about page_size
index entries plus those the filters drop, whatever the table's size; the monthly partitions outside
the range are pruned. A minimum on the ordered column ("over $0.10, dearest first") is a bound of
that index's scan, not a filter.
"""

from __future__ import annotations

from psycopg.rows import dict_row

from meterd.domain.call_search import CallOrder, CallSearch, CallSearchQuery
from meterd.domain.usage_results import CallRow
from meterd.store.db import Database
from meterd.store.usage_filter import CALL_COLUMNS, filter_params, filter_sql

_TOTAL_TOKENS = "(input_tokens + output_tokens + cached_read_tokens + cache_write_tokens)"

# The key column of each order (None: newest first, ordered by time alone).
_KEY = {CallOrder.NEWEST: None, CallOrder.COST: "cost_nanos", CallOrder.LATENCY: "latency_us"}


def _search_sql(s: CallSearch) -> str:
    """The minimums' conditions, each starting with AND (values are parameters)."""
    sql = ""
    if s.min_cost_nanos:
        sql += " AND cost_nanos >= %(min_cost)s"
    if s.min_latency_us:
        sql += " AND latency_us >= %(min_latency)s"
    if s.min_total_tokens:
        sql += f" AND {_TOTAL_TOKENS} >= %(min_tokens)s"
    if s.min_cached_read_tokens:
        sql += " AND cached_read_tokens >= %(min_cached)s"
    if s.order is CallOrder.LATENCY:
        sql += " AND latency_us IS NOT NULL"  # no latency, no rank (and calls_by_latency is partial)
    return sql


def search_sql(query: CallSearchQuery) -> tuple[str, dict]:
    """The page's statement and parameters: at most page_size + 1 rows, so the caller knows if more follow."""
    s = query.search
    params = filter_params(query.filter) | {
        "tenant": "",
        "limit": query.page_size + 1,
        "min_cost": s.min_cost_nanos,
        "min_latency": s.min_latency_us,
        "min_tokens": s.min_total_tokens,
        "min_cached": s.min_cached_read_tokens,
    }
    where = ""
    if query.start is not None:
        where += " AND occurred_at >= %(start)s"
        params["start"] = query.start
    if query.end is not None:
        where += " AND occurred_at < %(end)s"
        params["end"] = query.end
    key = _KEY[s.order]
    if query.after is not None:
        # Strictly after the previous page's last call in (key DESC, occurred_at DESC, call_id ASC).
        params |= {"after_k": query.after.key, "after_t": query.after.occurred_at, "after_c": query.after.call_id}
        in_time = "(occurred_at < %(after_t)s OR (occurred_at = %(after_t)s AND call_id > %(after_c)s))"
        if key is None:
            # The first condition repeats the index bound, so the scan starts at the cursor.
            where += f" AND occurred_at <= %(after_t)s AND {in_time}"
        else:
            where += f" AND {key} <= %(after_k)s AND ({key} < %(after_k)s OR {in_time})"
    order = "occurred_at DESC, call_id" if key is None else f"{key} DESC, occurred_at DESC, call_id"
    sql = f"""SELECT {CALL_COLUMNS}
  FROM calls
 WHERE tenant_id = %(tenant)s{where}{filter_sql(query.filter, outcome=True)}{_search_sql(s)}
 ORDER BY {order}
 LIMIT %(limit)s"""
    return sql, params


class CallSearchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, tenant_id: str, query: CallSearchQuery) -> list[CallRow]:
        sql, params = search_sql(query)
        async with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params | {"tenant": tenant_id})
            return [CallRow(**r) for r in await cur.fetchall()]
