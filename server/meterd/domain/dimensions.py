"""Declared label dimensions and error codes: the pure rules (see docs/usage.md, "Label and
error-code rollups"). The SQL is in store/label_rollups.py."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.errors import InvalidArgument

# The reserved rollup key under which every call is added by its error code. Label keys are 1-64
# characters, so it never names a label.
ERROR_CODE_KEY = ""
# Values of a (tenant, key, UTC day) beyond its bound are added under this value.
OTHER = "__other__"
DEFAULT_MAX_VALUES_PER_DAY = 10_000
MAX_VALUES_PER_DAY = 100_000
MAX_ERROR_CODES_PER_DAY = 1_000
MAX_DIMENSIONS = 32  # declared label keys per tenant: each adds a rollup row per call and hour
MAX_BACKFILL_DAYS = 400


@dataclasses.dataclass(frozen=True)
class LabelDimension:
    label_key: str
    max_values_per_day: int
    created_at: dt.datetime


def validate_declaration(label_key: str, max_values_per_day: int) -> tuple[str, int]:
    """(key, bound) with the default bound for 0; raises InvalidArgument."""
    violations = []
    if not label_key or len(label_key) > 64:
        violations.append(("label_key", "required: a label key of 1-64 characters, e.g. conversation"))
    if not 0 <= max_values_per_day <= MAX_VALUES_PER_DAY:
        violations.append(("max_values_per_day", f"must be between 0 (default {DEFAULT_MAX_VALUES_PER_DAY:,}) "
                           f"and {MAX_VALUES_PER_DAY:,}"))  # fmt: skip
    if violations:
        raise InvalidArgument(violations)
    return label_key, max_values_per_day or DEFAULT_MAX_VALUES_PER_DAY


def backfill_days(start: dt.datetime, end: dt.datetime, first_retained: dt.datetime | None) -> list[dt.datetime]:
    """The whole UTC days a back-fill of [start, end) recomputes: from the day of start (or of the
    oldest raw call still retained, when later: older days keep their rollups) up to end's day, end
    exclusive when it is midnight."""
    if start >= end:
        raise InvalidArgument([("start", "must be before end")])
    first = _day(start)
    if first_retained is None:
        return []
    first = max(first, _day(first_retained))
    last = _day(end) if _day(end) == end else _day(end) + dt.timedelta(days=1)
    days = []
    while first < last:
        days.append(first)
        first += dt.timedelta(days=1)
    if len(days) > MAX_BACKFILL_DAYS:
        raise InvalidArgument([("start", f"at most {MAX_BACKFILL_DAYS} days per back-fill, got {len(days)}")])
    return days


def _day(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
