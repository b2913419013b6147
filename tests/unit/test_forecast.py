"""domain/forecast.py at fixed dates (month ends, leap days, year ends): every figure is worked out
by hand from the stated rule, projected = basis * horizon / basis length, rounded down."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain.forecast import Figures, basis_start, exhaustion_at, extend, forecast, projected_period_cost

H, D = dt.timedelta(hours=1), dt.timedelta(days=1)


def t(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


WEEK = Figures(cost_nanos=7_000_000_007, calls=700, tokens=1_400_001)


@pytest.mark.parametrize(
    "end, horizon, horizon_end, projected",
    [
        # A day of a 7-day basis: a seventh of each figure, rounded down.
        (t(2026, 1, 31, 23), D, t(2026, 2, 1, 23), Figures(1_000_000_001, 100, 200_000)),
        (t(2026, 2, 28, 12), D, t(2026, 3, 1, 12), Figures(1_000_000_001, 100, 200_000)),
        (t(2028, 2, 28, 12), D, t(2028, 2, 29, 12), Figures(1_000_000_001, 100, 200_000)),
        (t(2028, 2, 29), D, t(2028, 3, 1), Figures(1_000_000_001, 100, 200_000)),
        (
            t(2028, 2, 29, 23, 59, 59, 999_999),
            2 * D,
            t(2028, 3, 2, 23, 59, 59, 999_999),
            Figures(2_000_000_002, 200, 400_000),
        ),  # fmt: skip
        (t(2026, 12, 31, 23), 7 * D, t(2027, 1, 7, 23), WEEK),
        # 29 days from a leap day: through March 29.
        (t(2028, 2, 29), 29 * D, t(2028, 3, 29), Figures(29_000_000_029, 2900, 5_800_004)),
        # One hour: 1/168 of the week.
        (t(2026, 3, 31, 23), H, t(2026, 4, 1), Figures(41_666_666, 4, 8333)),
        # 400 days (the longest horizon): x 400/7.
        (t(2028, 2, 29), 400 * D, t(2029, 4, 4), Figures(400_000_000_400, 40_000, 80_000_057)),
    ],
)
def test_forecast_over_a_horizon_at_fixed_dates(end, horizon, horizon_end, projected):
    f = forecast(end - 7 * D, end, horizon, end - 7 * D, WEEK)
    assert (f.basis_start, f.basis_end, f.horizon_end, f.basis, f.projected) == (
        end - 7 * D, end, horizon_end, WEEK, projected
    )  # fmt: skip


def test_a_young_tenant_is_averaged_over_its_own_hours_not_the_whole_window():
    end = t(2028, 3, 1)
    # First usage on Feb 28 at 10:37: the rate's window starts at 10:00, 38 hours before the end.
    f = forecast(end - 7 * D, end, D, t(2028, 2, 28, 10, 37), Figures(38_000, 38, 3800))
    assert f.basis_start == t(2028, 2, 28, 10)
    assert f.projected == Figures(24_000, 24, 2400)
    # No usage at all: nothing projected, the window as asked.
    none = forecast(end - 7 * D, end, D, None, Figures())
    assert (none.basis_start, none.projected) == (end - 7 * D, Figures())
    # Usage older than the window does not widen it.
    assert basis_start(end - 7 * D, end, t(2027, 1, 1)) == end - 7 * D
    # First usage in the hour holding the end: that hour alone.
    assert basis_start(end - 7 * D, t(2028, 3, 1, 0, 30), t(2028, 3, 1, 0, 10)) == t(2028, 3, 1)


def test_extend_rounds_down_and_never_divides_by_zero():
    assert extend(Figures(10, 10, 10), 1, 3) == Figures(3, 3, 3)
    assert extend(Figures(10, 10, 10), 5, 0) == Figures()
    assert extend(Figures(10, 10, 10), 0, 5) == Figures()
    # Exact integers far beyond float precision.
    assert extend(Figures(cost_nanos=2**62 + 1), 3, 3).cost_nanos == 2**62 + 1


DAY_START = t(2028, 2, 29)
RESET = t(2028, 3, 1)


@pytest.mark.parametrize(
    "held, maximum, at, expected",
    [
        (25, 100, t(2028, 2, 29, 6), t(2028, 2, 29, 0) + 24 * H),  # 25 in 6 h: 75 more take 18 h, at the reset: None
        (50, 100, t(2028, 2, 29, 6), t(2028, 2, 29, 12)),  # 50 more in 6 h
        (3, 10, t(2028, 2, 29, 0, 0, 3), t(2028, 2, 29, 0, 0, 10)),
        (1, 3, t(2028, 2, 29, 0, 0, 0, 3), t(2028, 2, 29, 0, 0, 0, 9)),
        (2, 3, t(2028, 2, 29, 0, 0, 0, 3), t(2028, 2, 29, 0, 0, 0, 5)),  # 1.5 µs rounded up to 2
        (100, 100, t(2028, 2, 29, 6), t(2028, 2, 29, 6)),  # already there: now
        (150, 100, t(2028, 2, 29, 6), t(2028, 2, 29, 6)),
        (0, 100, t(2028, 2, 29, 6), None),  # nothing used: no rate
        (5, 100, DAY_START, None),  # no time elapsed
    ],
)
def test_exhaustion_at_the_windows_average_rate(held, maximum, at, expected):
    got = exhaustion_at(held, maximum, DAY_START, at, RESET, sliding=False)
    assert got == (None if expected is not None and expected >= RESET else expected)


def test_a_sliding_window_runs_out_only_when_it_has():
    assert exhaustion_at(99, 100, DAY_START, t(2028, 2, 29, 6), RESET, sliding=True) is None
    assert exhaustion_at(100, 100, DAY_START, t(2028, 2, 29, 6), RESET, sliding=True) == t(2028, 2, 29, 6)


def test_projected_period_cost():
    # $10 so far, $7 over the last 7 days, 10.5 days left: 10 + 10.5 = $20.5.
    assert projected_period_cost(10 * 10**9, 7 * 10**9, 7 * 86_400 * 10**6, 907_200 * 10**6) == 20_500_000_000
    assert projected_period_cost(5, 7, 0, 10) == 5
    assert projected_period_cost(5, 7, 10, 0) == 5


def test_projected_over_budget_judgement():
    from meterd.domain.alert_judges import judge_projection
    from meterd.domain.alerts import validate_rule
    from meterd.domain.limits import Selector

    rule = validate_rule(id="month", kind="projected_over_budget", severity="warning", scope=Selector(),
                         amount_nanos=50 * 10**9, window_kind="month")  # fmt: skip
    start, end, now = t(2028, 2, 1), t(2028, 3, 1), t(2028, 2, 29, 12)
    # $14 so far, $14 over the 7 days before now ($2/day), 12 hours left: $15.
    assert judge_projection(rule, start, end, now, 14 * 10**9, 14 * 10**9, now - 7 * D) == []
    # $49 so far: $50 at the end, not over.
    assert judge_projection(rule, start, end, now, 49 * 10**9, 14 * 10**9, now - 7 * D) == []
    [alert] = judge_projection(rule, start, end, now, 49 * 10**9 + 1, 14 * 10**9, now - 7 * D)
    assert (alert.observed, alert.threshold, alert.window_start, alert.window_end) == (
        50e9 + 1, 50e9, start, end
    )  # fmt: skip
    assert "projected cost $50.00 by 2028-03-01 00:00 UTC over the budget $50.00" in alert.message
    assert "$2.00/day over the last 7 days" in alert.message
    # The budget is required, labels are not usable (rollups have none).
    with pytest.raises(Exception, match="amount_nanos"):
        validate_rule(id="x", kind="projected_over_budget", severity="warning", scope=Selector(), window_kind="month")
