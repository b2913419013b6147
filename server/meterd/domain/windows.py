"""Limit windows on the UTC time line: where a window starts and ends, sliding weights, retry-after.

Every function takes an aware datetime (any offset; converted to UTC) and returns aware UTC
datetimes. A window is half-open, [start, end): an instant exactly on a boundary belongs to the
new window, and `window_end` is also the reset time.

A sliding window of duration d is kept as fixed, epoch-aligned buckets of d (so writes stay plain
increments) and read as `current + previous * weight`, where weight is the part of the previous
bucket still inside the sliding window [at - d, at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SLIDING_SECONDS = 86_400
# Not in the proto contract, but far beyond any sensible budget period and keeps window ends
# inside datetime's range (year 9999) instead of failing with OverflowError at check time.
MAX_FIXED_SECONDS = 10 * 366 * 86_400

_MICROSECOND = timedelta(microseconds=1)


class WindowKind(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # ISO week, Monday 00:00 UTC
    MONTH = "month"
    FIXED = "fixed"  # any whole-second duration, aligned to the Unix epoch
    SLIDING = "sliding"  # duration 1 s .. 1 day

    @property
    def has_duration(self) -> bool:
        return self in (WindowKind.FIXED, WindowKind.SLIDING)


@dataclass(frozen=True)
class WindowSpec:
    """A window kind plus, for fixed and sliding kinds only, its duration in whole seconds."""

    kind: WindowKind
    seconds: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", WindowKind(self.kind))  # also accepts the plain string value
        if type(self.seconds) is not int:
            raise ValueError(f"seconds must be an int, got {self.seconds!r}")
        if not self.kind.has_duration:
            if self.seconds:
                raise ValueError(f"a {self.kind} window has no duration, got {self.seconds} s")
            return
        top = MAX_SLIDING_SECONDS if self.kind is WindowKind.SLIDING else MAX_FIXED_SECONDS
        if not 1 <= self.seconds <= top:
            raise ValueError(f"a {self.kind} window needs a duration of 1..{top} s, got {self.seconds}")

    @property
    def duration(self) -> timedelta:
        """The bucket length of a fixed or sliding window."""
        if not self.kind.has_duration:
            raise ValueError(f"a {self.kind} window has no fixed duration")
        return timedelta(seconds=self.seconds)


def _utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    return at.astimezone(UTC)


def window_start(spec: WindowSpec, at: datetime) -> datetime:
    """Start of the window containing `at` (for sliding: of the current fixed bucket)."""
    at = _utc(at)
    match spec.kind:
        case WindowKind.MINUTE:
            return at.replace(second=0, microsecond=0)
        case WindowKind.HOUR:
            return at.replace(minute=0, second=0, microsecond=0)
        case WindowKind.DAY:
            return at.replace(hour=0, minute=0, second=0, microsecond=0)
        case WindowKind.WEEK:
            return at.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=at.weekday())
        case WindowKind.MONTH:
            return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        case _:
            # timedelta // timedelta is an exact integer floor, also before 1970.
            return EPOCH + (at - EPOCH) // spec.duration * spec.duration


def window_end(spec: WindowSpec, at: datetime) -> datetime:
    """End of the window containing `at` (exclusive), i.e. when its counter resets."""
    start = window_start(spec, at)
    match spec.kind:
        case WindowKind.MINUTE:
            return start + timedelta(minutes=1)
        case WindowKind.HOUR:
            return start + timedelta(hours=1)
        case WindowKind.DAY:
            return start + timedelta(days=1)
        case WindowKind.WEEK:
            return start + timedelta(weeks=1)
        case WindowKind.MONTH:
            if start.month == 12:
                return start.replace(year=start.year + 1, month=1)
            return start.replace(month=start.month + 1)
        case _:
            return start + spec.duration


def previous_window_start(spec: WindowSpec, at: datetime) -> datetime:
    """Start of the window just before the one containing `at`."""
    return window_start(spec, window_start(spec, at) - _MICROSECOND)


def _require_sliding(spec: WindowSpec) -> None:
    if spec.kind is not WindowKind.SLIDING:
        raise ValueError(f"a {spec.kind} window has no previous-bucket weight; only sliding windows do")


def _seconds(span: timedelta) -> Fraction:
    return Fraction(span // _MICROSECOND, 1_000_000)


def sliding_weight(spec: WindowSpec, at: datetime) -> Fraction:
    """Weight of the previous bucket at `at`: (bucket_end - at) / duration, in (0, 1].

    1 exactly on a bucket start (the sliding window is the whole previous bucket), falling linearly
    towards 0 as the current bucket fills.
    """
    _require_sliding(spec)
    return _seconds(window_end(spec, at) - _utc(at)) / spec.seconds


def _ceil(x: Fraction) -> int:
    return -(-x.numerator // x.denominator)


def sliding_used(current: int, previous: int, spec: WindowSpec, at: datetime) -> int:
    """current + previous * weight, rounded up so a sliding limit never under-counts."""
    return current + _ceil(previous * sliding_weight(spec, at))


def retry_after(
    spec: WindowSpec,
    at: datetime,
    *,
    used_current: int,
    used_previous: int,
    reserved: int,
    amount: int,
    max: int,
) -> timedelta | None:
    """How long from `at` until a request of `amount` fits under `max`, assuming no other usage.

    Whole seconds, rounded up (retrying at `at + result` is never early); zero when it fits now;
    None when it never fits (amount > max). `reserved` is held in the current window's counter.
    `used_previous` matters only for sliding windows.
    """
    if amount > max:
        return None
    at = _utc(at)
    current = used_current + reserved
    to_end = _seconds(window_end(spec, at) - at)
    if spec.kind is not WindowKind.SLIDING:
        return timedelta(0) if current + amount <= max else timedelta(seconds=_ceil(to_end))
    # Sliding, duration d, `at + t`. The estimate never rises with t (nothing new arrives), so the
    # answer is the first t where it fits, found in the first phase where it can:
    #   1. t < to_end, same bucket: current + ceil(P * (to_end - t) / d) + amount <= max.
    #      With room = max - amount - current >= 0 (an integer), ceil(x) <= room  <=>  x <= room,
    #      so P * (to_end - t) / d <= room  <=>  t >= to_end - room * d / P.
    #   2. to_end <= t < to_end + d: today's bucket (current, reservations included, as they settle
    #      into it) is now the previous one and the new bucket is empty:
    #      ceil(current * (to_end + d - t) / d) + amount <= max  <=>  t >= to_end + d - (max - amount) * d / current.
    #   3. t >= to_end + d: both buckets are empty and amount <= max fits. Phase 2 always ends by
    #      then because max - amount >= 0.
    # Both bounds are exact Fractions; only the final answer is rounded (up) to a second.
    d = spec.seconds
    room = max - amount - current
    if room >= 0:
        t = to_end - Fraction(room * d, used_previous) if used_previous else Fraction(0)
    else:
        t = to_end + d - Fraction((max - amount) * d, current)
    return timedelta(seconds=_ceil(t)) if t > 0 else timedelta(0)
