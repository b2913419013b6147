"""The date rules (limit windows, month-end projection, retention months) under every fixed "now"
of meter_testing.dates: month starts and ends, a leap day, a year end and start. The e2e and
integration tests that depend on the date inject a clock set to these same dates."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest

from meter_testing.dates import FIXED_NOWS, date_id
from meterd.domain.projection import project, projection_window
from meterd.domain.windows import WindowKind, WindowSpec, previous_window_start, window_end, window_start
from meterd.store.partitions import month_start, next_month

SPECS = [WindowSpec(k) for k in ("minute", "hour", "day", "week", "month")] + [
    WindowSpec(WindowKind.FIXED, 6 * 3600),
    WindowSpec(WindowKind.SLIDING, 3600),
]


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}{s.seconds or ''}")
def test_the_window_of_now_contains_now_and_tiles_the_time_line(spec, now):
    start, end = window_start(spec, now), window_end(spec, now)
    assert start <= now < end
    assert window_start(spec, end) == end  # the next window starts where this one ends
    assert window_end(spec, previous_window_start(spec, now)) == start


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
def test_month_windows_follow_the_calendar(now):
    spec = WindowSpec("month")
    start, end = window_start(spec, now), window_end(spec, now)
    assert (start.year, start.month, start.day) == (now.year, now.month, 1)
    assert (end - start).days == calendar.monthrange(now.year, now.month)[1]
    assert (month_start(now), next_month(month_start(now))) == (start, end)  # partitions use the same months


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
def test_the_projection_covers_the_month_of_now_to_its_last_microsecond(now):
    window = projection_window(now)
    assert window.month_start <= now < window.month_end
    assert (window.month_end - window.month_start).days == calendar.monthrange(now.year, now.month)[1]
    assert window.basis_end <= now and (window.basis_end - window.basis_start).days == 7
    # 1 nano a day for 7 days: the rest of the month adds its remaining fraction of days, no more.
    projected = project(window, month_to_date=0, basis_cost=7 * 86_400_000_000, days=7)
    remaining = window.month_end - now
    assert projected.projected_month_cost_nanos == remaining // dt.timedelta(microseconds=1)
