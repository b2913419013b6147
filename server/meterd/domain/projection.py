"""GetUsage's month-end projection: the month to date plus the run-rate of the last full days.

(Forecasts over any horizon are domain/forecast.py's.)"""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.windows import WindowKind, WindowSpec, window_end, window_start

BASIS_DAYS = 7  # the projection's run-rate looks at this many full days before the end
_DAY = WindowSpec(WindowKind.DAY)
_MONTH = WindowSpec(WindowKind.MONTH)
_DAY_US = 86_400 * 1_000_000


@dataclasses.dataclass(frozen=True)
class ProjectionWindow:
    """The instants a projection is computed from, for an answered range ending at `end`."""

    end: dt.datetime
    month_start: dt.datetime  # calendar month of end (UTC)
    month_end: dt.datetime  # first instant of the next month
    basis_start: dt.datetime  # the 7 full days before end's day
    basis_end: dt.datetime  # 00:00 of end's day


def projection_window(end: dt.datetime) -> ProjectionWindow:
    # The month of the last answered instant: an end of exactly 1 April 00:00 projects March.
    last = end - dt.timedelta(microseconds=1)
    basis_end = window_start(_DAY, end)
    return ProjectionWindow(
        end=end,
        month_start=window_start(_MONTH, last),
        month_end=window_end(_MONTH, last),
        basis_start=basis_end - dt.timedelta(days=BASIS_DAYS),
        basis_end=basis_end,
    )


@dataclasses.dataclass(frozen=True)
class Projection:
    month_to_date_cost_nanos: int
    daily_run_rate_cost_nanos: int
    projected_month_cost_nanos: int
    basis_days: int
    month_end: dt.datetime


def basis_days(window: ProjectionWindow, first_seen: dt.datetime | None) -> int:
    """Full days of the basis period with data available: from the day of the first matching usage
    (when that is inside the 7 days) to the end's day; 0 when there is none before the end's day."""
    if first_seen is None or first_seen >= window.basis_end:
        return 0
    start = max(window.basis_start, window_start(_DAY, first_seen))
    return (window.basis_end - start).days


def project(window: ProjectionWindow, month_to_date: int, basis_cost: int, days: int) -> Projection:
    """projected = month_to_date + (basis_cost / days) * days left until month_end, the days left
    counted to the microsecond; integer arithmetic, rounded down to the nano-USD."""
    if days <= 0:
        return Projection(month_to_date, 0, month_to_date, 0, window.month_end)
    remaining = window.month_end - window.end
    remaining_us = max(0, (remaining.days * 86_400 + remaining.seconds) * 1_000_000 + remaining.microseconds)
    projected = month_to_date + basis_cost * remaining_us // (days * _DAY_US)
    return Projection(month_to_date, basis_cost // days, projected, days, window.month_end)


# --- time helpers -------------------------------------------------------------------------------
