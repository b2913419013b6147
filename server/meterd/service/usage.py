"""GetUsage and ListCalls: pick the answered range, read it in one snapshot, derive the projection."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.usage import (
    Aggregate,
    CallRow,
    CallsQuery,
    Cursor,
    Dimension,
    Projection,
    UsageQuery,
    UsageRow,
    basis_days,
    encode_page_token,
    project,
    projection_window,
)
from meterd.store.label_rollups import LabelRollupStore
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
    def __init__(self, store: UsageStore, dimensions: LabelRollupStore | None = None) -> None:
        self.store = store
        self.dimensions = dimensions

    async def usage(self, tenant_id: str, query: UsageQuery) -> UsageReport:
        if self.dimensions is not None and (query.filter.labels or Dimension.LABEL in query.group_by):
            # Declared labels are answered from their rollups (docs/usage.md).
            declared = await self.dimensions.declared(tenant_id)
            query = dataclasses.replace(query, declared=frozenset(declared))
        start, end = query.answered_range()
        window = projection_window(end) if query.projection else None
        data = await self.store.usage(tenant_id, query, start, end, window)
        projection = None
        if window is not None:
            days = basis_days(window, data.first_seen)
            projection = project(window, data.month_to_date_cost, data.basis_cost, days)
        return UsageReport(data.rows, data.totals, data.expired_reservations, projection, start, end, query.raw)

    async def list_calls(self, tenant_id: str, query: CallsQuery) -> CallsPage:
        rows = await self.store.list_calls(tenant_id, query)
        if len(rows) <= query.page_size:
            return CallsPage(rows, "")
        page = rows[: query.page_size]
        last = page[-1]
        return CallsPage(page, encode_page_token(Cursor(last.occurred_at, last.call_id), query.scope))
