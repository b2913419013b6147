"""GetUsage and ListCalls, the pure parts: request validation, which table answers a query, the
figures derived from summed usage (rates, percentiles), the month-end projection and ListCalls page
tokens. No I/O here; the SQL is in store/usage.py. See docs/usage.md."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from enum import StrEnum

from meterd.domain import histogram
from meterd.domain.clock import EPOCH
from meterd.domain.errors import InvalidArgument
from meterd.domain.windows import WindowKind, WindowSpec, window_end, window_start

DEFAULT_RANGE = dt.timedelta(days=30)
MAX_ROWS = 1000  # GetUsage rows; also the default when the limit is 0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
BASIS_DAYS = 7  # the projection's run-rate looks at this many full days before the end

_HOUR = WindowSpec(WindowKind.HOUR)
_DAY = WindowSpec(WindowKind.DAY)
_MONTH = WindowSpec(WindowKind.MONTH)
_DAY_US = 86_400 * 1_000_000


class Dimension(StrEnum):
    SUBJECT = "subject"
    PROVIDER = "provider"
    MODEL = "model"
    OPERATION = "operation"
    LABEL = "label"  # the value of UsageQuery.label_key ("" when the call has no such label)
    TIME = "time"  # UsageQuery.bucket


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

    @property
    def needs_raw_calls(self) -> bool:
        """Rollups carry neither labels nor a per-outcome split of tokens, cost and latency."""
        return bool(self.labels) or self.success is not None

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
) -> UsageFilter:
    """A filter normalised like recorded calls are (provider lower-cased)."""
    return UsageFilter(subject, subject_prefix, provider.strip().lower(), model, operation, dict(labels or {}), success)


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

    @property
    def raw(self) -> bool:
        """True when raw calls answer (labels filtered or grouped on, or an outcome filter);
        otherwise the hourly rollups do."""
        return self.filter.needs_raw_calls or Dimension.LABEL in self.group_by

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
    if f.subject or f.subject_prefix or Dimension.SUBJECT in query.group_by:
        return (Span(Source.SUBJECT_HOURLY, start, end),)
    return model_spans(start, end, hourly_only=query.bucket is Bucket.HOUR and Dimension.TIME in query.group_by)


def model_spans(start: dt.datetime, end: dt.datetime, *, hourly_only: bool = False) -> tuple[Span, ...]:
    """[start, end) (whole hours) from the subject-free rollups: daily rows for whole days, hourly for the rest."""
    first_day = window_start(_DAY, start)
    if first_day < start:
        first_day += dt.timedelta(days=1)
    last_day = window_start(_DAY, end)
    if hourly_only or first_day >= last_day:
        return (Span(Source.MODEL_HOURLY, start, end),)
    spans = [Span(Source.MODEL_DAILY, first_day, last_day)]
    if start < first_day:
        spans.insert(0, Span(Source.MODEL_HOURLY, start, first_day))
    if last_day < end:
        spans.append(Span(Source.MODEL_HOURLY, last_day, end))
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


@dataclasses.dataclass(frozen=True)
class UsageKey:
    """The group a row belongs to; only the grouped dimensions are set."""

    subject: str | None = None
    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    label_value: str | None = None
    bucket_start: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """Summed usage of a group (or of everything), with its summed latency histogram."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    units: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0
    latency_count: int = 0
    latency_sum_us: int = 0
    # Cost parts (nano-USD; see domain.pricing.CostBreakdown): the first seven sum to cost_nanos for
    # calls recorded since breakdowns exist; cache_savings_nanos is not part of the cost.
    cost_input_nanos: int = 0
    cost_output_nanos: int = 0
    cost_cached_read_nanos: int = 0
    cost_cache_write_nanos: int = 0
    cost_requests_nanos: int = 0
    cost_units_nanos: int = 0
    cost_other_nanos: int = 0
    cache_savings_nanos: int = 0
    latency_buckets: Sequence[int] = ()  # histogram.BUCKETS counts, or empty when there are none

    @property
    def successes(self) -> int:
        return self.calls - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def total_tokens(self) -> int:
        """Every token kind (reasoning tokens are already in output_tokens)."""
        return self.input_tokens + self.output_tokens + self.cached_read_tokens + self.cache_write_tokens

    @property
    def cost_nanos_per_1k_tokens(self) -> float:
        return self.cost_nanos * 1000 / self.total_tokens if self.total_tokens else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Cached-read share of all input tokens (uncached + cached-read + cache-write)."""
        all_input = self.input_tokens + self.cached_read_tokens + self.cache_write_tokens
        return self.cached_read_tokens / all_input if all_input else 0.0

    @property
    def latency_avg_us(self) -> int | None:
        return self.latency_sum_us // self.latency_count if self.latency_count else None

    def latency_percentile_us(self, q: float) -> int | None:
        """From the histogram: within histogram.MAX_RELATIVE_ERROR of the exact value."""
        return histogram.percentile(self.latency_buckets, q) if self.latency_buckets else None

    @property
    def output_tokens_per_second(self) -> float:
        """Output tokens over the summed latency (calls recorded without a latency add tokens only)."""
        return self.output_tokens * 1_000_000 / self.latency_sum_us if self.latency_sum_us else 0.0


def combine(parts: Sequence[Aggregate]) -> Aggregate:
    """The aggregate of disjoint groups: sums add, histograms add bucket by bucket."""
    sums = {
        f.name: sum(getattr(p, f.name) for p in parts)
        for f in dataclasses.fields(Aggregate)
        if f.name != "latency_buckets"
    }
    buckets = histogram.empty()
    for p in parts:
        histogram.merge(buckets, p.latency_buckets)
    return Aggregate(**sums, latency_buckets=tuple(buckets) if any(buckets) else ())


@dataclasses.dataclass(frozen=True)
class UsageRow:
    key: UsageKey
    stats: Aggregate


# --- projection ---------------------------------------------------------------------------------


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


def hour_floor(at: dt.datetime) -> dt.datetime:
    return window_start(_HOUR, at)


def hour_ceil(at: dt.datetime) -> dt.datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + dt.timedelta(hours=1)


# --- ListCalls ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cursor:
    """The last call of a page: the next page starts after it (older, or same instant and later id)."""

    occurred_at: dt.datetime
    call_id: str


@dataclasses.dataclass(frozen=True)
class CallsQuery:
    start: dt.datetime | None  # unset: no bound
    end: dt.datetime | None
    filter: UsageFilter
    page_size: int
    after: Cursor | None

    @property
    def scope(self) -> str:
        return list_scope(self.filter, self.start, self.end)


@dataclasses.dataclass(frozen=True)
class CallRow:
    call_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    api_key_id: str
    reservation_id: str | None
    subject: str
    provider: str
    model: str
    operation: str
    labels: dict[str, str]
    metadata: dict[str, str]
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    latency_us: int | None
    ttft_us: int | None
    retry_count: int
    success: bool
    error_code: str
    error_message: str
    cost_nanos: int
    cost_source: str
    price_id: str
    cost_parts: Sequence[int] | None = None  # domain.pricing.PARTS order; None: recorded before breakdowns
    service_tier: str = ""


_BAD_TOKEN = "not a page token from a previous ListCallsResponse with the same filter and range"


def list_scope(filter: UsageFilter, start: dt.datetime | None, end: dt.datetime | None) -> str:
    """What a page token is bound to: a token is only valid with the filter and range it came from."""
    content = [filter.fingerprint(), start.isoformat() if start else None, end.isoformat() if end else None]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


def encode_page_token(cursor: Cursor, scope: str) -> str:
    delta = cursor.occurred_at - EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raw = json.dumps({"t": us, "c": cursor.call_id, "s": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_page_token(token: str, scope: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        us, call_id, token_scope = data["t"], data["c"], data["s"]
        if not isinstance(us, int) or not isinstance(call_id, str) or not isinstance(token_scope, str):
            raise ValueError("wrong types")
        occurred_at = EPOCH + dt.timedelta(microseconds=us)
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError):
        raise InvalidArgument([("page_token", _BAD_TOKEN)]) from None
    if token_scope != scope:
        raise InvalidArgument([("page_token", _BAD_TOKEN)])
    return Cursor(occurred_at, call_id)


def validate_calls_query(
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filter: UsageFilter,
    page_size: int,
    page_token: str,
    violations: list[tuple[str, str]] | None = None,
) -> CallsQuery:
    """Page size 0 = 50, larger than 1,000 capped at 1,000; unset start/end leave the range open."""
    violations = list(violations or [])
    if start is not None and end is not None and start >= end:
        violations.append(("start", f"must be before end ({start.isoformat()} >= {end.isoformat()})"))
    if page_size < 0:
        violations.append(("page_size", "must not be negative (0 means the default, 50)"))
    if violations:
        raise InvalidArgument(violations)
    after = decode_page_token(page_token, list_scope(filter, start, end)) if page_token else None
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return CallsQuery(start, end, filter, size, after)
