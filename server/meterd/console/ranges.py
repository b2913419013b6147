"""The console's time ranges (today, 7 days, 30 days, this month, custom) and the previous period of
the same length, on the UTC time line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

PRESETS = {"today": "Today", "7d": "7 days", "30d": "30 days", "month": "This month", "custom": "Custom"}
MAX_SPAN = dt.timedelta(days=400)


class RangeError(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    preset: str
    start: dt.datetime
    end: dt.datetime

    @property
    def span(self) -> dt.timedelta:
        return self.end - self.start

    def previous(self) -> Range:
        return Range(self.preset, self.start - self.span, self.start)

    @property
    def label(self) -> str:
        if self.preset != "custom":
            return PRESETS[self.preset]
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def _midnight(at: dt.datetime) -> dt.datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_instant(text: str) -> dt.datetime:
    """`2026-03-10` or `2026-03-10T12:00` (UTC unless an offset is given)."""
    try:
        at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RangeError(f"not a date or time: {text[:40]!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def resolve(preset: str, now: dt.datetime, start: str = "", end: str = "") -> Range:
    """A preset ending now; "custom" needs start (and takes end, default now). Days are UTC days."""
    now = now.astimezone(dt.UTC)
    preset = preset or "7d"
    if preset == "today":
        return Range(preset, _midnight(now), now)
    if preset == "7d":
        return Range(preset, now - dt.timedelta(days=7), now)
    if preset == "30d":
        return Range(preset, now - dt.timedelta(days=30), now)
    if preset == "month":
        return Range(preset, _midnight(now).replace(day=1), now)
    if preset == "custom":
        if not start:
            raise RangeError("a custom range needs a start")
        begin = parse_instant(start)
        finish = parse_instant(end) if end else now
        if len(end.strip()) == 10:  # a date alone means the whole day
            finish += dt.timedelta(days=1)
        if begin >= finish:
            raise RangeError("the start must be before the end")
        if finish - begin > MAX_SPAN:
            raise RangeError(f"ranges are at most {MAX_SPAN.days} days")
        return Range(preset, begin, finish)
    raise RangeError(f"unknown range {preset[:20]!r}; use one of {', '.join(PRESETS)}")


def report_range(period: str, now: dt.datetime) -> Range:
    """The report periods: the last whole UTC day, ISO week (Monday) or month before now."""
    today = _midnight(now.astimezone(dt.UTC))
    if period == "day":
        return Range("custom", today - dt.timedelta(days=1), today)
    if period == "week":
        this_week = today - dt.timedelta(days=today.weekday())
        return Range("custom", this_week - dt.timedelta(days=7), this_week)
    if period == "month":
        this_month = today.replace(day=1)
        last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
        return Range("custom", last_month, this_month)
    raise RangeError(f"unknown period {period[:20]!r}; use day, week or month")
