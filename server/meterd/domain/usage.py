"""GetUsage and ListCalls, the pure parts of what is asked: request validation and which table
answers a query. What they read (summed figures and the rates derived from them, the rows) is in
domain/usage_results.py; ListCalls' search and page tokens in domain/call_search.py. No I/O here;
the SQL is in store/usage_sql.py. See docs/usage.md."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from enum import StrEnum

from meterd.domain.dimensions import ERROR_CODE_KEY
from meterd.domain.errors import InvalidArgument
from meterd.domain.windows import WindowKind, WindowSpec, window_start

DEFAULT_RANGE = dt.timedelta(days=30)
MAX_ROWS = 1000  # GetUsage rows; also the default when the limit is 0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_HOUR = WindowSpec(WindowKind.HOUR)
_DAY = WindowSpec(WindowKind.DAY)


class Dimension(StrEnum):
    SUBJECT = "subject"
    PROVIDER = "provider"
    MODEL = "model"
    OPERATION = "operation"
    LABEL = "label"  # the value of UsageQuery.label_key ("" when the call has no such label)
    TIME = "time"  # UsageQuery.bucket
    ERROR_CODE = "error_code"  # "" for successes and errors recorded without a code


class Bucket(StrEnum):
    """A time bucket; the value is the date_trunc field name (UTC, weeks start on Monday)."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Order(StrEnum):
    KEYS = "keys"
    COST = "cost"
    CALLS = "calls"
    TOTAL_TOKENS = "total_tokens"
    ERRORS = "errors"
    LATENCY_P95 = "latency_p95"
    ERROR_RATE = "error_rate"


@dataclasses.dataclass(frozen=True)
class UsageFilter:
    """Which calls are looked at; empty fields match everything, set fields must all match."""

    subject: str = ""
    subject_prefix: str = ""
    provider: str = ""  # lower-cased, as stored
    model: str = ""
    operation: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    success: bool | None = None  # None: both outcomes
    error_code: str = ""  # "": every call (see Dimension.ERROR_CODE for the value of a success)

    @property
    def needs_raw_calls(self) -> bool:
        """The subject and model rollups carry neither labels, error codes nor a per-outcome split
        of tokens, cost and latency (the label rollups may: see UsageQuery.dimension_key)."""
        return bool(self.labels) or self.success is not None or bool(self.error_code)

    def fingerprint(self) -> str:
        content = dataclasses.asdict(self)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def usage_filter(
    *,
    subject: str = "",
    subject_prefix: str = "",
    provider: str = "",
    model: str = "",
    operation: str = "",
    labels: dict[str, str] | None = None,
    success: bool | None = None,
    error_code: str = "",
) -> UsageFilter:
    """A filter normalised like recorded calls are (provider lower-cased)."""
    return UsageFilter(
        subject, subject_prefix, provider.strip().lower(), model, operation, dict(labels or {}), success, error_code
    )


@dataclasses.dataclass(frozen=True)
class UsageQuery:
    start: dt.datetime  # as requested (or defaulted); see answered_range() for what is answered
    end: dt.datetime
    filter: UsageFilter
    group_by: tuple[Dimension, ...]
    label_key: str
    bucket: Bucket | None
    order: Order
    descending: bool
    limit: int
    projection: bool
    declared: frozenset[str] = frozenset()  # the tenant's declared label dimensions

    @property
    def dimension_key(self) -> str | None:
        """The label rollups' key that answers this query ("" for error codes), or None: when one
        declared label (or the error code) is grouped or filtered on, and neither subjects, outcomes
        nor another label are."""
        f = self.filter
        if f.success is not None or f.subject or f.subject_prefix or Dimension.SUBJECT in self.group_by:
            return None
        keys = set(f.labels)
        if Dimension.LABEL in self.group_by:
            keys.add(self.label_key)
        if Dimension.ERROR_CODE in self.group_by or f.error_code:
            keys.add(ERROR_CODE_KEY)
        if len(keys) != 1:
            return None
        (key,) = keys
        return key if key == ERROR_CODE_KEY or key in self.declared else None

    @property
    def raw(self) -> bool:
        """True when raw calls answer (undeclared labels filtered or grouped on, an outcome filter,
        or a mix the label rollups cannot answer); otherwise rollups do."""
        involved = (
            self.filter.needs_raw_calls or Dimension.LABEL in self.group_by or Dimension.ERROR_CODE in self.group_by
        )
        return involved and self.dimension_key is None

    def answered_range(self) -> tuple[dt.datetime, dt.datetime]:
        """Raw calls answer the exact range. Rollups answer whole hours: every hour h with
        floor_hour(start) <= h < end, i.e. [floor_hour(start), ceil_hour(end))."""
        if self.raw:
            return self.start, self.end
        return hour_floor(self.start), hour_ceil(self.end)


class Source(StrEnum):
    """Where GetUsage rows come from; the value is the table name (all share the rollup columns)."""

    CALLS = "calls"
    SUBJECT_HOURLY = "usage_hourly"
    MODEL_HOURLY = "usage_model_hourly"
    MODEL_DAILY = "usage_model_daily"
    SUBJECT_DAILY = "usage_subject_daily"
    LABEL_HOURLY = "usage_label_hourly"
    LABEL_DAILY = "usage_label_daily"

    @property
    def sparse(self) -> bool:
        """Histograms stored {"bucket": count} (latency_hist) rather than dense (latency_buckets)."""
        return self not in (Source.MODEL_HOURLY, Source.MODEL_DAILY)

    @property
    def daily(self) -> bool:
        return self in (Source.MODEL_DAILY, Source.SUBJECT_DAILY, Source.LABEL_DAILY)


@dataclasses.dataclass(frozen=True)
class Span:
    """Rows of `source` with start <= time < end."""

    source: Source
    start: dt.datetime
    end: dt.datetime


def plan_spans(query: UsageQuery, start: dt.datetime, end: dt.datetime) -> tuple[Span, ...]:
    """The cheapest rows that answer [start, end) (the answered range) exactly.

    Raw calls when labels or outcomes are involved; the per-subject hourly rollup when subjects are;
    otherwise the rollups summed over subjects: whole UTC days from the daily rows and the partial
    days at either edge from the hourly ones (or hourly rows only when grouping by hour)."""
    if query.raw:
        return (Span(Source.CALLS, start, end),)
    f = query.filter
    hourly_only = query.bucket is Bucket.HOUR and Dimension.TIME in query.group_by
    if query.dimension_key is not None:
        return model_spans(start, end, hourly_only=hourly_only, grains=(Source.LABEL_HOURLY, Source.LABEL_DAILY))
    if f.subject or f.subject_prefix or Dimension.SUBJECT in query.group_by:
        return model_spans(start, end, hourly_only=hourly_only, grains=(Source.SUBJECT_HOURLY, Source.SUBJECT_DAILY))
    return model_spans(start, end, hourly_only=hourly_only)


def model_spans(
    start: dt.datetime,
    end: dt.datetime,
    *,
    hourly_only: bool = False,
    grains: tuple[Source, Source] = (Source.MODEL_HOURLY, Source.MODEL_DAILY),
) -> tuple[Span, ...]:
    """[start, end) (whole hours) from one family of rollups (hourly, daily): daily rows for whole
    days, hourly for the rest."""
    hourly, daily = grains
    first_day = window_start(_DAY, start)
    if first_day < start:
        first_day += dt.timedelta(days=1)
    last_day = window_start(_DAY, end)
    if hourly_only or first_day >= last_day:
        return (Span(hourly, start, end),)
    spans = [Span(daily, first_day, last_day)]
    if start < first_day:
        spans.insert(0, Span(hourly, start, first_day))
    if last_day < end:
        spans.append(Span(hourly, last_day, end))
    return tuple(spans)


def validate_usage_query(
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
    filter: UsageFilter,
    group_by: Sequence[Dimension],
    label_key: str,
    bucket: Bucket | None,
    order: Order,
    descending: bool,
    limit: int,
    projection: bool,
    violations: list[tuple[str, str]] | None = None,
    default_range: dt.timedelta = DEFAULT_RANGE,
) -> UsageQuery:
    """Defaults applied (end = now, start = end - 30 days, limit 0 = 1,000, larger limits capped at
    1,000); raises InvalidArgument listing every problem (with those the caller already found)."""
    violations = list(violations or [])
    end = end or now
    start = start or end - default_range
    if start >= end:
        violations.append(("start", f"must be before end ({start.isoformat()} >= {end.isoformat()})"))
    dims = tuple(dict.fromkeys(group_by))  # repeated dimensions group once
    if Dimension.LABEL in dims and not label_key:
        violations.append(("label_key", "required with GROUP_BY_LABEL: the label whose values to group by"))
    if Dimension.TIME in dims and bucket is None:
        violations.append(("time_bucket", "required with GROUP_BY_TIME: HOUR, DAY, WEEK or MONTH"))
    if limit < 0:
        violations.append(("limit", "must not be negative (0 means the maximum, 1,000)"))
    if violations:
        raise InvalidArgument(violations)
    return UsageQuery(
        start=start,
        end=end,
        filter=filter,
        group_by=dims,
        label_key=label_key if Dimension.LABEL in dims else "",
        bucket=bucket if Dimension.TIME in dims else None,
        order=order,
        descending=descending,
        limit=min(limit or MAX_ROWS, MAX_ROWS),
        projection=projection,
    )


# --- projection ---------------------------------------------------------------------------------


def hour_floor(at: dt.datetime) -> dt.datetime:
    return window_start(_HOUR, at)


def hour_ceil(at: dt.datetime) -> dt.datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + dt.timedelta(hours=1)
