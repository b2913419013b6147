"""GetUsage and ListCalls: pick the answered range, read it in one snapshot, derive the projection."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.call_search import CallSearchQuery, SearchCursor, encode_token, sort_key
from meterd.domain.forecast import Figures, Forecast, forecast
from meterd.domain.projection import Projection, basis_days, project, projection_window
from meterd.domain.quota import LimitState
from meterd.domain.usage import Bucket, Dimension, Order, UsageQuery
from meterd.domain.usage_results import Aggregate, CallRow, UsageRow
from meterd.service.limit_statuses import LimitStatusReader
from meterd.service.ports import CallSearchPort, DimensionPort, UsagePort


@dataclasses.dataclass(frozen=True)
class UsageReport:
    rows: list[UsageRow]
    totals: Aggregate
    expired_reservations: int
    projection: Projection | None
    start: dt.datetime  # the range actually answered (whole hours when rollups answered)
    end: dt.datetime
    raw: bool  # True when raw calls answered, False for the hourly rollups
    forecast: Forecast | None = None
    limits: list[LimitState] | None = None  # include_limits: the selected limits' statuses


@dataclasses.dataclass(frozen=True)
class CallsPage:
    calls: list[CallRow]
    next_page_token: str  # "" on the last page


class UsageService:
    def __init__(
        self,
        store: UsagePort,
        calls: CallSearchPort,
        dimensions: DimensionPort | None = None,
        limit_statuses: LimitStatusReader | None = None,
    ) -> None:
        self.store = store
        self.calls = calls
        self.dimensions = dimensions  # None: every label is answered from raw calls
        self.limit_statuses = limit_statuses  # None: include_limits answers no limits

    async def usage(
        self,
        tenant_id: str,
        query: UsageQuery,
        *,
        forecast: tuple[dt.timedelta, dt.timedelta] | None = None,
        limits_at: dt.datetime | None = None,
    ) -> UsageReport:
        """forecast: (horizon, basis) of a forecast to add (domain/forecast.py); limits_at: add the
        statuses of the limits the filter selects, as of that instant (service/limit_statuses.py)."""
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
        ahead = None if forecast is None else await self._forecast(tenant_id, query, *forecast)
        limits = None
        if limits_at is not None:
            limits = (
                []
                if self.limit_statuses is None
                else await self.limit_statuses.statuses(tenant_id, query.filter, limits_at)
            )
        return UsageReport(
            data.rows, data.totals, data.expired_reservations, projection, start, end, query.raw, ahead, limits
        )

    async def _forecast(
        self, tenant_id: str, query: UsageQuery, horizon: dt.timedelta, basis: dt.timedelta
    ) -> Forecast:
        """The filtered usage of the basis window before the requested end, and its first hour: one
        GetUsage by hour, oldest first, limited to one row (the totals still cover every hour)."""
        hourly = dataclasses.replace(
            query, start=query.end - basis, group_by=(Dimension.TIME,), label_key="", bucket=Bucket.HOUR,
            order=Order.KEYS, descending=False, limit=1, projection=False,
        )  # fmt: skip
        start, end = hourly.answered_range()
        data = await self.store.usage(tenant_id, hourly, start, end, None)
        first = data.rows[0].key.bucket_start if data.rows else None
        t = data.totals
        return forecast(start, query.end, horizon, first, Figures(t.cost_nanos, t.calls, t.total_tokens))

    async def list_calls(self, tenant_id: str, query: CallSearchQuery) -> CallsPage:
        rows = await self.calls.search(tenant_id, query)
        if len(rows) <= query.page_size:
            return CallsPage(rows, "")
        page = rows[: query.page_size]
        last = page[-1]
        cursor = SearchCursor(sort_key(query.search, last.cost_nanos, last.latency_us), last.occurred_at, last.call_id)
        return CallsPage(page, encode_token(cursor, query.scope))
