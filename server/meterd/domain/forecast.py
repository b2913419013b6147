"""Forecasts at the current rate, the pure parts (docs/usage.md, "Forecasts"). No I/O, no clock: every
instant is given.

* GetUsage's forecast: the filtered usage of a trailing basis window [basis_end - basis, basis_end)
  (basis_end the requested end, the start rounded down to the hour when rollups answer; the window
  starts at the first hour with usage when that is later, so a tenant two days old is not averaged
  over seven), extended over the horizon after basis_end:

      projected = basis figure * horizon / basis length     (microseconds, integers, rounded down)

* A limit's exhaustion: when used + reserved reaches max at the average rate since the window
  started, if before the window resets (a sliding window, whose sum stays level at a steady rate,
  runs out only when it already has).
* PROJECTED_OVER_BUDGET alerts compare the cost of a calendar period projected to its end with a
  budget: cost so far + the basis rate over the time left.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

_US_PER_S = 1_000_000


def us(delta: dt.timedelta) -> int:
    """A timedelta in whole microseconds, exactly (no float seconds)."""
    return (delta.days * 86_400 + delta.seconds) * _US_PER_S + delta.microseconds


@dataclasses.dataclass(frozen=True)
class Figures:
    """What a forecast extends: cost (nano-USD), calls and tokens of every kind."""

    cost_nanos: int = 0
    calls: int = 0
    tokens: int = 0


@dataclasses.dataclass(frozen=True)
class Forecast:
    basis_start: dt.datetime
    basis_end: dt.datetime
    basis: Figures
    horizon_end: dt.datetime
    projected: Figures


def basis_start(window_start: dt.datetime, basis_end: dt.datetime, first_usage: dt.datetime | None) -> dt.datetime:
    """The rate's window start: the window's, or the first usage's hour when later."""
    if first_usage is not None:
        hour = first_usage.replace(minute=0, second=0, microsecond=0)
        if hour > window_start:
            return min(basis_end, hour)
    return window_start


def extend(figures: Figures, numerator_us: int, denominator_us: int) -> Figures:
    """figures * numerator / denominator, each rounded down (0 for an empty denominator)."""
    if denominator_us <= 0 or numerator_us <= 0:
        return Figures()
    return Figures(
        cost_nanos=figures.cost_nanos * numerator_us // denominator_us,
        calls=figures.calls * numerator_us // denominator_us,
        tokens=figures.tokens * numerator_us // denominator_us,
    )


def forecast(
    window_start: dt.datetime,
    basis_end: dt.datetime,
    horizon: dt.timedelta,
    first_usage: dt.datetime | None,
    figures: Figures,
) -> Forecast:
    """The forecast of `figures`, the usage of [window_start, basis_end) whose first usage was at
    first_usage (None: none), over `horizon` after basis_end."""
    start = basis_start(window_start, basis_end, first_usage)
    projected = extend(figures, us(horizon), us(basis_end - start))
    return Forecast(start, basis_end, figures, basis_end + horizon, projected)


def exhaustion_at(
    held: int, maximum: int, window_start: dt.datetime, at: dt.datetime, reset_at: dt.datetime, *, sliding: bool
) -> dt.datetime | None:
    """When held (used + reserved) reaches maximum at the rate held / (at - window_start); `at` when
    it already has; None when it would be at or after reset_at, or nothing is held."""
    if held >= maximum:
        return at
    elapsed = us(at - window_start)
    if sliding or held <= 0 or elapsed <= 0:
        return None
    wait = -(-(maximum - held) * elapsed // held)  # rounded up: not earlier than the rate says
    if wait >= us(reset_at - at):
        return None
    return at + dt.timedelta(microseconds=wait)


def projected_period_cost(so_far: int, rate_cost: int, rate_us: int, left_us: int) -> int:
    """A period's cost at its end: so_far + rate_cost / rate_us * left_us, rounded down."""
    if rate_us <= 0 or left_us <= 0:
        return so_far
    return so_far + rate_cost * left_us // rate_us
