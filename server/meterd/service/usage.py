"""GetUsage and ListCalls: pick the answered range, read it in one snapshot, derive the projection."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.call_search import CallSearchQuery, SearchCursor, encode_token, sort_key
from meterd.domain.usage import (
    Aggregate,
    CallRow,
    Projection,
    UsageQuery,
    UsageRow,
    basis_days,
    project,
    projection_window,
)
from meterd.store.call_search import CallSearchStore
from meterd.store.usage import UsageStore


@dataclasses.dataclass(frozen=True)
class UsageReport:
    rows: list[UsageRow]
    totals: Aggregate
    expired_reservations: int
    projection: Projection | None
    start: dt.datetime  # the range actually answered (whole hours when rollups answered)
    end: dt.datetime
    raw: bool  # True when raw calls answered, False for the hourly rollups


@dataclasses.dataclass(frozen=True)
class CallsPage:
    calls: list[CallRow]
    next_page_token: str  # "" on the last page


class UsageService:
    def __init__(self, store: UsageStore, calls: CallSearchStore | None = None) -> None:
        self.store = store
        self.calls = calls or CallSearchStore(store.db)

    async def usage(self, tenant_id: str, query: UsageQuery) -> UsageReport:
        start, end = query.answered_range()
        window = projection_window(end) if query.projection else None
        data = await self.store.usage(tenant_id, query, start, end, window)
        projection = None
        if window is not None:
            days = basis_days(window, data.first_seen)
            projection = project(window, data.month_to_date_cost, data.basis_cost, days)
        return UsageReport(data.rows, data.totals, data.expired_reservations, projection, start, end, query.raw)

    async def list_calls(self, tenant_id: str, query: CallSearchQuery) -> CallsPage:
        rows = await self.calls.search(tenant_id, query)
        if len(rows) <= query.page_size:
            return CallsPage(rows, "")
        page = rows[: query.page_size]
        last = page[-1]
        cursor = SearchCursor(sort_key(query.search, last.cost_nanos, last.latency_us), last.occurred_at, last.call_id)
        return CallsPage(page, encode_token(cursor, query.scope))
