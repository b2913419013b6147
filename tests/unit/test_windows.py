"""Unit tests for meterd.domain.windows; expected instants are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from meterd.domain.windows import (
    MAX_FIXED_SECONDS,
    WindowKind,
    WindowSpec,
    previous_window_start,
    retry_after,
    sliding_used,
    sliding_weight,
    window_end,
    window_start,
)

MINUTE = WindowSpec(WindowKind.MINUTE)
HOUR = WindowSpec(WindowKind.HOUR)
DAY = WindowSpec(WindowKind.DAY)
WEEK = WindowSpec(WindowKind.WEEK)
MONTH = WindowSpec(WindowKind.MONTH)
FIXED_5S = WindowSpec(WindowKind.FIXED, 5)
FIXED_7S = WindowSpec(WindowKind.FIXED, 7)
FIXED_30M = WindowSpec(WindowKind.FIXED, 1800)
FIXED_7H = WindowSpec(WindowKind.FIXED, 7 * 3600)
FIXED_1D = WindowSpec(WindowKind.FIXED, 86_400)
SLIDING_60S = WindowSpec(WindowKind.SLIDING, 60)


def t(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DDTHH:MM:SS[.ffffff]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------------------- WindowSpec


@pytest.mark.parametrize(
    ("kind", "seconds"),
    [
        (WindowKind.FIXED, 0),
        (WindowKind.FIXED, -5),
        (WindowKind.FIXED, MAX_FIXED_SECONDS + 1),
        (WindowKind.SLIDING, 0),
        (WindowKind.SLIDING, 86_401),
        (WindowKind.MINUTE, 60),
        (WindowKind.MONTH, 1),
        (WindowKind.FIXED, True),  # bool is an int subclass, never a duration
        ("fortnight", 0),
    ],
)
def test_window_spec_rejects(kind: str, seconds: int) -> None:
    with pytest.raises(ValueError):
        WindowSpec(kind, seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "seconds"),
    [
        (WindowKind.FIXED, 1),
        (WindowKind.FIXED, MAX_FIXED_SECONDS),
        (WindowKind.SLIDING, 1),
        (WindowKind.SLIDING, 86_400),
        (WindowKind.WEEK, 0),
    ],
)
def test_window_spec_accepts(kind: WindowKind, seconds: int) -> None:
    assert WindowSpec(kind, seconds).seconds == seconds


def test_window_spec_coerces_kind_string() -> None:
    spec = WindowSpec("hour")  # type: ignore[arg-type]
    assert spec.kind is WindowKind.HOUR
    assert spec == HOUR


def test_duration_only_for_fixed_and_sliding() -> None:
    assert FIXED_30M.duration == timedelta(minutes=30)
    assert SLIDING_60S.duration == timedelta(minutes=1)
    with pytest.raises(ValueError):
        _ = DAY.duration


# ------------------------------------------------------------------------------- start / end

# (spec, at, start, end). A window is [start, end): exactly on a boundary belongs to the new one.
BOUNDARIES = [
    # minute
    (MINUTE, "2026-03-15T12:34:56.789000", "2026-03-15T12:34:00", "2026-03-15T12:35:00"),
    (MINUTE, "2026-03-15T12:34:00", "2026-03-15T12:34:00", "2026-03-15T12:35:00"),
    (MINUTE, "2026-03-15T12:34:59.999999", "2026-03-15T12:34:00", "2026-03-15T12:35:00"),
    (MINUTE, "2025-12-31T23:59:30", "2025-12-31T23:59:00", "2026-01-01T00:00:00"),
    # hour
    (HOUR, "2026-03-15T12:00:00", "2026-03-15T12:00:00", "2026-03-15T13:00:00"),
    (HOUR, "2026-03-15T12:59:59.999999", "2026-03-15T12:00:00", "2026-03-15T13:00:00"),
    (HOUR, "2025-12-31T23:30:00", "2025-12-31T23:00:00", "2026-01-01T00:00:00"),
    # day
    (DAY, "2026-03-15T00:00:00", "2026-03-15T00:00:00", "2026-03-16T00:00:00"),
    (DAY, "2026-03-15T23:59:59.999999", "2026-03-15T00:00:00", "2026-03-16T00:00:00"),
    (DAY, "2028-02-28T12:00:00", "2028-02-28T00:00:00", "2028-02-29T00:00:00"),  # leap year
    (DAY, "2028-02-29T12:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
    (DAY, "2026-02-28T12:00:00", "2026-02-28T00:00:00", "2026-03-01T00:00:00"),  # not a leap year
    (DAY, "2025-12-31T18:00:00", "2025-12-31T00:00:00", "2026-01-01T00:00:00"),
    # ISO week (2026-01-01 is a Thursday, so 2026-01-04 is a Sunday and 2026-01-05 a Monday)
    (WEEK, "2026-01-04T23:59:59", "2025-12-29T00:00:00", "2026-01-05T00:00:00"),
    (WEEK, "2026-01-05T00:00:00", "2026-01-05T00:00:00", "2026-01-12T00:00:00"),
    (WEEK, "2026-01-04T23:59:59.999999", "2025-12-29T00:00:00", "2026-01-05T00:00:00"),
    (WEEK, "2026-01-07T15:00:00", "2026-01-05T00:00:00", "2026-01-12T00:00:00"),
    (WEEK, "2028-02-29T08:00:00", "2028-02-28T00:00:00", "2028-03-06T00:00:00"),  # Tuesday
    # month
    (MONTH, "2026-01-31T23:59:59", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
    (MONTH, "2026-02-01T00:00:00", "2026-02-01T00:00:00", "2026-03-01T00:00:00"),
    (MONTH, "2026-02-28T23:59:59.999999", "2026-02-01T00:00:00", "2026-03-01T00:00:00"),
    (MONTH, "2028-02-29T12:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
    (MONTH, "2026-04-30T12:00:00", "2026-04-01T00:00:00", "2026-05-01T00:00:00"),
    (MONTH, "2025-12-31T23:59:59.999999", "2025-12-01T00:00:00", "2026-01-01T00:00:00"),
    (MONTH, "2026-01-01T00:00:00", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
    # fixed, epoch-aligned. 2026-01-01T00:00:00Z is 1_767_225_600 s, a multiple of 5, 7 and 1800.
    (FIXED_5S, "2026-01-01T00:00:07", "2026-01-01T00:00:05", "2026-01-01T00:00:10"),
    (FIXED_5S, "2026-01-01T00:00:10", "2026-01-01T00:00:10", "2026-01-01T00:00:15"),
    (FIXED_5S, "2026-01-01T00:00:09.999999", "2026-01-01T00:00:05", "2026-01-01T00:00:10"),
    (FIXED_5S, "1969-12-31T23:59:58", "1969-12-31T23:59:55", "1970-01-01T00:00:00"),  # before the epoch
    (FIXED_30M, "2026-01-01T00:29:59", "2026-01-01T00:00:00", "2026-01-01T00:30:00"),
    (FIXED_30M, "2026-01-01T00:30:00", "2026-01-01T00:30:00", "2026-01-01T01:00:00"),
    (FIXED_30M, "2026-06-15T13:45:00", "2026-06-15T13:30:00", "2026-06-15T14:00:00"),
    # 2026-01-02T00:00:00Z = 1_767_312_000 s = 7 * 252_473_142 + 6, so the 7 s bucket began 6 s earlier.
    (FIXED_7S, "2026-01-02T00:00:00", "2026-01-01T23:59:54", "2026-01-02T00:00:01"),
    # 20_455 days * 24 h = 490_920 h = 7 * 70_131 + 3, so 7 h buckets start at 21:00, 04:00, 11:00...
    (FIXED_7H, "2026-01-02T00:00:00", "2026-01-01T21:00:00", "2026-01-02T04:00:00"),
    (FIXED_7H, "2026-01-02T05:00:00", "2026-01-02T04:00:00", "2026-01-02T11:00:00"),
    (FIXED_1D, "2026-03-15T12:00:00", "2026-03-15T00:00:00", "2026-03-16T00:00:00"),
    # sliding: the bucket is the fixed window of the same duration
    (SLIDING_60S, "2026-01-01T00:01:30", "2026-01-01T00:01:00", "2026-01-01T00:02:00"),
    (SLIDING_60S, "2026-01-01T00:02:00", "2026-01-01T00:02:00", "2026-01-01T00:03:00"),
]


@pytest.mark.parametrize(("spec", "at", "start", "end"), BOUNDARIES)
def test_window_start_and_end(spec: WindowSpec, at: str, start: str, end: str) -> None:
    assert window_start(spec, t(at)) == t(start)
    assert window_end(spec, t(at)) == t(end)


@pytest.mark.parametrize(("spec", "at", "start", "end"), BOUNDARIES)
def test_end_is_the_next_windows_start(spec: WindowSpec, at: str, start: str, end: str) -> None:
    assert window_start(spec, t(end)) == t(end)
    assert window_end(spec, t(end) - timedelta(microseconds=1)) == t(end)
    assert previous_window_start(spec, t(end)) == t(start)


def test_results_are_utc_and_other_offsets_are_converted() -> None:
    # 01:30 at +02:00 is 23:30 UTC the day before: the UTC day, not the local one, counts.
    at = datetime(2026, 1, 5, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    start = window_start(DAY, at)
    assert start == t("2026-01-04T00:00:00")
    assert start.tzinfo is UTC
    assert window_end(WEEK, at).tzinfo is UTC
    assert window_start(WEEK, at) == t("2025-12-29T00:00:00")  # still Sunday in UTC


@pytest.mark.parametrize(
    "call",
    [
        lambda at: window_start(DAY, at),
        lambda at: window_end(FIXED_5S, at),
        lambda at: previous_window_start(MONTH, at),
        lambda at: sliding_weight(SLIDING_60S, at),
        lambda at: retry_after(HOUR, at, used_current=0, used_previous=0, reserved=0, amount=1, max=1),
    ],
)
def test_naive_datetimes_are_rejected(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="timezone-aware"):
        call(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("spec", "at", "previous"),
    [
        (MINUTE, "2026-03-15T12:34:56", "2026-03-15T12:33:00"),
        (HOUR, "2026-01-01T00:10:00", "2025-12-31T23:00:00"),
        (DAY, "2028-03-01T10:00:00", "2028-02-29T00:00:00"),
        (WEEK, "2026-01-05T00:00:00", "2025-12-29T00:00:00"),
        (WEEK, "2026-01-04T23:59:59", "2025-12-22T00:00:00"),
        (MONTH, "2026-03-31T10:00:00", "2026-02-01T00:00:00"),
        (MONTH, "2026-01-10T00:00:00", "2025-12-01T00:00:00"),
        (FIXED_5S, "2026-01-01T00:00:07", "2026-01-01T00:00:00"),
        (FIXED_30M, "2026-01-01T00:00:00", "2025-12-31T23:30:00"),
        (SLIDING_60S, "2026-01-01T00:01:30", "2026-01-01T00:00:00"),
    ],
)
def test_previous_window_start(spec: WindowSpec, at: str, previous: str) -> None:
    assert previous_window_start(spec, t(at)) == t(previous)


# ------------------------------------------------------------------------------- sliding

# SLIDING_60S's bucket [00:01:00, 00:02:00); weight = (00:02:00 - at) / 60 s.
WEIGHTS = [
    ("2026-01-01T00:01:00", Fraction(1)),  # 0% through the bucket: all of the previous one counts
    ("2026-01-01T00:01:15", Fraction(3, 4)),
    ("2026-01-01T00:01:20", Fraction(2, 3)),
    ("2026-01-01T00:01:30", Fraction(1, 2)),  # 50%
    ("2026-01-01T00:01:59", Fraction(1, 60)),
    ("2026-01-01T00:01:59.999999", Fraction(1, 60_000_000)),  # ~100%: 1 us of 60 s left
    ("2026-01-01T00:02:00", Fraction(1)),  # the next bucket starts over
]


@pytest.mark.parametrize(("at", "weight"), WEIGHTS)
def test_sliding_weight(at: str, weight: Fraction) -> None:
    assert sliding_weight(SLIDING_60S, t(at)) == weight


@pytest.mark.parametrize(
    ("current", "previous", "at", "used"),
    [
        (10, 100, "2026-01-01T00:01:00", 110),  # 0%: 10 + 100
        (10, 100, "2026-01-01T00:01:30", 60),  # 50%: 10 + 50
        (10, 100, "2026-01-01T00:01:59", 12),  # 10 + ceil(100/60 = 1.67)
        (10, 100, "2026-01-01T00:01:59.999999", 11),  # ~100%: 10 + ceil(100/60e6), never under-counted
        (10, 0, "2026-01-01T00:01:00", 10),
        (0, 3, "2026-01-01T00:01:20", 2),  # 3 * 2/3 = 2 exactly
        (0, 4, "2026-01-01T00:01:20", 3),  # 4 * 2/3 = 2.67 -> 3
        (7, 1, "2026-01-01T00:01:59", 8),  # 1/60 -> 1
        (0, 0, "2026-01-01T00:01:45", 0),
    ],
)
def test_sliding_used(current: int, previous: int, at: str, used: int) -> None:
    assert sliding_used(current, previous, SLIDING_60S, t(at)) == used


@pytest.mark.parametrize("spec", [MINUTE, MONTH, FIXED_5S])
def test_sliding_functions_reject_other_kinds(spec: WindowSpec) -> None:
    with pytest.raises(ValueError, match="only sliding"):
        sliding_weight(spec, t("2026-01-01T00:00:00"))
    with pytest.raises(ValueError, match="only sliding"):
        sliding_used(1, 1, spec, t("2026-01-01T00:00:00"))


# ------------------------------------------------------------------------------- retry_after


def _retry(spec: WindowSpec, at: str, c: int, p: int, r: int, amount: int, max: int) -> timedelta | None:
    return retry_after(spec, t(at), used_current=c, used_previous=p, reserved=r, amount=amount, max=max)


@pytest.mark.parametrize(
    ("spec", "at", "c", "p", "r", "amount", "max", "seconds"),
    [
        # calendar and fixed: zero when it fits, else until the reset
        (MINUTE, "2026-03-15T12:34:20", 50, 0, 0, 20, 100, 0),
        (MINUTE, "2026-03-15T12:34:20", 80, 0, 0, 20, 100, 0),  # exactly reaches max
        (MINUTE, "2026-03-15T12:34:20", 90, 0, 0, 20, 100, 40),
        (MINUTE, "2026-03-15T12:34:20", 50, 0, 40, 20, 100, 40),  # reservations count
        (MINUTE, "2026-03-15T12:34:20", 0, 1000, 0, 20, 100, 0),  # previous ignored off sliding
        (MINUTE, "2026-03-15T12:34:59.500000", 100, 0, 0, 1, 100, 1),  # 0.5 s rounded up
        (HOUR, "2026-03-15T12:59:00", 100, 0, 0, 1, 100, 60),
        (DAY, "2026-03-15T18:00:00", 100, 0, 0, 1, 100, 6 * 3600),
        (WEEK, "2026-01-04T23:59:59", 100, 0, 0, 1, 100, 1),
        (MONTH, "2026-02-27T00:00:00", 100, 0, 0, 1, 100, 2 * 86_400),  # Feb 2026 has 28 days
        (MONTH, "2028-02-27T00:00:00", 100, 0, 0, 1, 100, 3 * 86_400),  # Feb 2028 has 29
        (FIXED_5S, "2026-01-01T00:00:07", 5, 0, 0, 1, 5, 3),
        (FIXED_30M, "2026-01-01T00:29:00", 5, 0, 0, 1, 5, 60),
        (FIXED_5S, "2026-01-01T00:00:07", 0, 0, 0, 5, 5, 0),  # amount == max fits an empty window
        # sliding 60 s, bucket [00:01:00, 00:02:00)
        (SLIDING_60S, "2026-01-01T00:01:00", 50, 0, 0, 50, 100, 0),  # no previous usage
        (SLIDING_60S, "2026-01-01T00:01:30", 10, 100, 0, 30, 100, 0),  # 10 + 50 + 30 fits now
        (SLIDING_60S, "2026-01-01T00:01:00", 0, 40, 0, 50, 100, 0),  # whole previous bucket fits
        # 0 + ceil(100 w) + 50 <= 100 once w <= 1/2: 30 s in.
        (SLIDING_60S, "2026-01-01T00:01:00", 0, 100, 0, 50, 100, 30),
        (SLIDING_60S, "2026-01-01T00:01:00", 20, 100, 0, 30, 100, 30),  # 20 + 50 + 30
        # 20 used + 20 reserved leave room 30 for the previous 80: w <= 3/8, 37.5 s in -> 38 s.
        (SLIDING_60S, "2026-01-01T00:01:00", 20, 80, 20, 30, 100, 38),
        # 90 w <= 50 once w <= 5/9: t >= 60 - 33.3 = 26.7 -> 27 s (at 26 s: ceil(90 * 34/60 = 51) too much).
        (SLIDING_60S, "2026-01-01T00:01:00", 0, 90, 0, 50, 100, 27),
        (SLIDING_60S, "2026-01-01T00:01:00.500000", 0, 100, 0, 50, 100, 30),  # 29.5 s -> 30
        # room 0: only when the previous bucket has slid out entirely, i.e. at the next bucket.
        (SLIDING_60S, "2026-01-01T00:01:00", 70, 100, 0, 30, 100, 60),
        # Phase 2: 80 + 30 > 100 in this bucket. In the next one 80 w + 30 <= 100 once w <= 7/8,
        # 7.5 s into it: 15 s + 7.5 s = 22.5 -> 23 s.
        (SLIDING_60S, "2026-01-01T00:01:45", 80, 0, 0, 30, 100, 23),
        (SLIDING_60S, "2026-01-01T00:01:45", 50, 999, 30, 30, 100, 23),  # reserved settles into it
        # amount == max behind one unit: the next bucket must slide out entirely (15 + 60 s).
        (SLIDING_60S, "2026-01-01T00:01:45", 1, 0, 0, 100, 100, 75),
    ],
)
def test_retry_after(spec: WindowSpec, at: str, c: int, p: int, r: int, amount: int, max: int, seconds: int) -> None:
    assert _retry(spec, at, c, p, r, amount, max) == timedelta(seconds=seconds)


@pytest.mark.parametrize("spec", [MINUTE, MONTH, FIXED_5S, SLIDING_60S])
def test_retry_after_never_fits(spec: WindowSpec) -> None:
    assert _retry(spec, "2026-01-01T00:01:00", 0, 0, 0, 101, 100) is None


def _estimate(spec: WindowSpec, at: datetime, later: datetime, c: int, p: int) -> int:
    """What a sliding check at `later` would read if nothing new arrived after `at`."""
    buckets = (later - window_start(spec, at)) // spec.duration
    if buckets == 0:
        return sliding_used(c, p, spec, later)
    if buckets == 1:
        return sliding_used(0, c, spec, later)
    return 0


@pytest.mark.parametrize("offset", [0, 3, 9, Fraction(13, 2)])
def test_retry_after_sliding_is_the_first_second_that_fits(offset: Fraction) -> None:
    # Brute force over a 10 s sliding window: the answer fits, and one second earlier does not.
    spec = WindowSpec(WindowKind.SLIDING, 10)
    at = t("2026-01-01T00:00:00") + timedelta(seconds=float(offset))
    checked = 0
    for c in range(0, 13, 3):
        for p in range(0, 13, 2):
            for amount in (1, 4, 10):
                got = retry_after(spec, at, used_current=c, used_previous=p, reserved=0, amount=amount, max=10)
                assert got is not None
                assert _estimate(spec, at, at + got, c, p) + amount <= 10, (c, p, amount, got)
                if got:
                    assert _estimate(spec, at, at + got - timedelta(seconds=1), c, p) + amount > 10, (c, p, amount)
                checked += 1
    assert checked == 5 * 7 * 3
