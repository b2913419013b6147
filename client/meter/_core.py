"""What the sync and async clients share: settings, request building, failure policy state, the
spool and the delivery bookkeeping. No I/O here."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from meter.errors import MeterError, MeterUnavailable, from_rpc_error
from meter.policy import DEFAULT_POLICY, EmergencyAllowance, FailurePolicy
from meter.results import CheckResult
from meter.spool import MemorySpool
from meter.v1 import common_pb2, meter_pb2

log = logging.getLogger("meter")

# Reconnect quickly once Meter is back (gRPC's default backoff grows to 2 minutes).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30_000),
)

# A record that failed with one of these is retried with the same call_id, then spooled.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
RETRYABLE_NAMES = frozenset(c.name for c in RETRYABLE)


@dataclass(frozen=True)
class Settings:
    """Client settings; every field is a keyword argument of MeterClient / AsyncMeterClient.

    check_timeout: deadline of CheckQuota (check, reserve, guard) in seconds. Default 0.5 s: a check is
      a millisecond or two when Meter is healthy; past half a second the failure policy decides, so an
      outage adds at most that to a user's request.
    record_timeout: deadline of each RecordCall attempt (default 2 s: records are off the critical path
      and Meter answers UNAVAILABLE within its pool timeout, 2 s by default, when its database is down).
    record_retries: retries of a failed record with the same call_id (default 2), with exponential
      backoff from retry_backoff seconds (default 0.1, doubled each time, with jitter), then the spool.
    batch_timeout: deadline of each RecordCalls attempt (record_many and spool delivery; default 10 s:
      up to 1,000 records a request). A retried batch whose first attempt committed after all answers
      those items as duplicates: they still count once.
    read_timeout: deadline of GetUsage and ListCalls (default 10 s).
    probe_interval: after Meter was found unreachable, checks apply the failure policy without calling
      Meter, and records go straight to the spool, for this long (default 1 s), so an outage does not
      cost every caller a deadline.
    flush_interval / flush_batch: how often the background flusher tries to deliver the spool, and how
      many records go per RecordCalls (default 0.5 s, 500).
    """

    check_timeout: float = 0.5
    record_timeout: float = 2.0
    record_retries: int = 2
    retry_backoff: float = 0.1
    batch_timeout: float = 10.0
    read_timeout: float = 10.0
    probe_interval: float = 1.0
    flush_interval: float = 0.5
    flush_batch: int = 500


class Core:
    def __init__(
        self,
        api_key: str,
        policy: FailurePolicy | None,
        spool: MemorySpool | None | bool,
        settings: Settings,
    ) -> None:
        self.metadata = (("authorization", f"Bearer {api_key}"),)
        self.policy = policy or DEFAULT_POLICY
        self.allowance = EmergencyAllowance(self.policy)
        if spool is True or spool is None:
            spool = MemorySpool()
        # (not `spool or None`: an empty spool is falsy)
        self.spool: MemorySpool | None = None if spool is False else spool
        self.settings = settings
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.delivered_from_spool = 0
        self.rejected_from_spool = 0

    # -- outage state -------------------------------------------------------------------------------

    def mark_down(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.settings.probe_interval

    def mark_up(self) -> None:
        with self._lock:
            self._down_until = 0.0

    def known_down(self) -> bool:
        return time.monotonic() < self._down_until

    def backoff(self, attempt: int) -> float:
        base = self.settings.retry_backoff * (2**attempt)
        return base * (0.5 + random.random() / 2)

    def on_check_unavailable(self, error: MeterUnavailable | None, tokens: int) -> CheckResult:
        """Meter did not answer a check: the failure policy decides."""
        self.mark_down()
        if self.allowance.admit(tokens):
            log.warning(
                "Meter unreachable (%s): call allowed by the %s failure policy",
                error or "recently down",
                self.policy.mode,
            )
            return CheckResult.allowed_by_policy()
        reason = "fail-closed" if self.policy.mode == "closed" else "emergency allowance exhausted"
        raise MeterUnavailable(
            f"Meter unreachable ({error or 'recently down'}); {reason}", error.code if error else None
        )

    def spool_or_raise(self, request: meter_pb2.RecordCallRequest, error: MeterError | None) -> None:
        if self.spool is None:
            raise error or MeterUnavailable("Meter unreachable and the client has no spool")
        if not self.spool.append(request):
            raise MeterUnavailable(f"Meter unreachable and the spool is full: record {request.call_id} dropped")

    def settle_batch(self, batch: list[meter_pb2.RecordCallRequest], reply: meter_pb2.RecordCallsResponse) -> int:
        """Drop delivered (and permanently rejected) records from the spool; returns how many."""
        done = []
        for result in reply.results:
            request = batch[result.index]
            if not result.error_code:
                done.append(request.call_id)
                self.delivered_from_spool += 1
            elif result.error_code not in RETRYABLE_NAMES:
                log.error("spooled record %s rejected: %s %s", request.call_id, result.error_code, result.error_message)
                done.append(request.call_id)
                self.rejected_from_spool += 1
        if self.spool is not None:
            self.spool.remove(done)
        return len(done)

    def classify(self, err: grpc.RpcError) -> tuple[MeterError, bool]:
        """(client exception, whether to retry)."""
        error = from_rpc_error(err)
        return error, error.code in RETRYABLE


# -- request building ---------------------------------------------------------------------------------


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromTimedelta(dt.timedelta(seconds=seconds))
    return d


def _timestamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(when if when.tzinfo else when.replace(tzinfo=dt.UTC))
    return t


def estimate(
    estimate_tokens: int = 0,
    max_output_tokens: int = 0,
    cached_read_tokens: int = 0,
    units: int = 0,
    requests: int | None = None,
    estimate_cost_nanos: int | None = None,
) -> meter_pb2.Estimate:
    """`estimate_tokens` is the expected uncached input; `max_output_tokens` the request's max_tokens."""
    return meter_pb2.Estimate(
        input_tokens=estimate_tokens,
        max_output_tokens=max_output_tokens,
        cached_read_tokens=cached_read_tokens,
        units=units,
        requests=requests,
        cost_nanos=estimate_cost_nanos,
    )


def estimated_tokens(e: meter_pb2.Estimate) -> int:
    return e.input_tokens + e.max_output_tokens + e.cached_read_tokens


def check_request(
    subject: str,
    provider: str,
    model: str,
    *,
    reserve: bool,
    operation: str = "",
    labels: Mapping[str, str] | None = None,
    ttl: float | None = None,
    reservation_id: str = "",
    service_tier: str = "",
    **est,
) -> meter_pb2.CheckQuotaRequest:
    return meter_pb2.CheckQuotaRequest(
        subject=subject,
        provider=provider,
        model=model,
        operation=operation,
        labels=dict(labels or {}),
        estimate=estimate(**est),
        mode=meter_pb2.CHECK_MODE_RESERVE if reserve else meter_pb2.CHECK_MODE_CHECK_ONLY,
        reservation_ttl=_duration(ttl),
        reservation_id=reservation_id,
        service_tier=service_tier,
    )


def record_request(
    subject: str,
    provider: str,
    model: str,
    *,
    call_id: str | None = None,
    reservation_id: str = "",
    operation: str = "",
    labels: Mapping[str, str] | None = None,
    usage: common_pb2.Usage | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    requests: int | None = None,
    units: int | None = None,
    latency: float | None = None,
    time_to_first_token: float | None = None,
    retry_count: int = 0,
    error_code: str = "",
    error_message: str = "",
    occurred_at: dt.datetime | None = None,
    cost_nanos: int | None = None,
    metadata: Mapping[str, str] | None = None,
    service_tier: str = "",
) -> meter_pb2.RecordCallRequest:
    """A RecordCallRequest with a generated call_id and occurred_at = now when not given.

    occurred_at is fixed here, once, so every retry and the spooled copy carry identical content (the
    server counts the same call_id with the same content once; different content is ALREADY_EXISTS).
    Usage: pass a `Usage` message or the counts; with neither, a record that settles a reservation
    charges the reserved estimate. The outcome is ERROR when error_code or error_message is set."""
    counts = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_read_tokens": cached_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "requests": requests,
        "units": units,
    }
    given = {k: v for k, v in counts.items() if v is not None}
    if given:
        usage = common_pb2.Usage(**given) if usage is None else _merged(usage, given)
    failed = bool(error_code or error_message)
    return meter_pb2.RecordCallRequest(
        call_id=call_id or str(uuid.uuid4()),
        reservation_id=reservation_id,
        subject=subject,
        provider=provider,
        model=model,
        operation=operation,
        labels=dict(labels or {}),
        usage=usage,
        latency=_duration(latency),
        time_to_first_token=_duration(time_to_first_token),
        retry_count=retry_count,
        outcome=common_pb2.OUTCOME_ERROR if failed else common_pb2.OUTCOME_SUCCESS,
        error_code=error_code[:128],
        error_message=error_message[:1024],
        occurred_at=_timestamp(occurred_at or dt.datetime.now(dt.UTC)),
        cost_nanos=cost_nanos,
        metadata=dict(metadata or {}),
        service_tier=service_tier,
    )


def _merged(usage: common_pb2.Usage, given: dict) -> common_pb2.Usage:
    out = common_pb2.Usage()
    out.CopyFrom(usage)
    for k, v in given.items():
        setattr(out, k, v)
    return out


_GROUP = {name.removeprefix("GROUP_BY_").lower(): value for name, value in meter_pb2.GroupBy.items()}
_BUCKET = {name.removeprefix("TIME_BUCKET_").lower(): value for name, value in meter_pb2.TimeBucket.items()}
_ORDER = {name.removeprefix("USAGE_ORDER_").lower(): value for name, value in meter_pb2.UsageOrder.items()}
_CALL_ORDER = {name.removeprefix("CALL_ORDER_").lower(): value for name, value in meter_pb2.CallOrder.items()}
_OUTCOME = {name.removeprefix("OUTCOME_").lower(): value for name, value in common_pb2.Outcome.items()}


E = TypeVar("E", bound=int)


def as_enum(enum: type[E], value: int) -> E:
    """`value` typed as the proto enum `enum`: protoc's stubs type enum fields by the enum's class (an
    int subclass) while the values are plain ints at run time, so the cast between the two is here."""
    return cast(E, value)


def _enum(enum: type[E], table: Mapping[str, int], value: str | int, what: str) -> E:
    if isinstance(value, int):
        return as_enum(enum, value)
    try:
        return as_enum(enum, table[value.lower()])
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; one of {sorted(k for k in table if k != 'unspecified')}") from None


def usage_request(
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    subject: str = "",
    subject_prefix: str = "",
    provider: str = "",
    model: str = "",
    operation: str = "",
    labels: Mapping[str, str] | None = None,
    group_by: Iterable[str | int] = (),
    label_key: str = "",
    time_bucket: str | int = 0,
    order_by: str | int = 0,
    descending: bool = False,
    limit: int = 0,
    include_projection: bool = False,
    forecast_horizon: float | None = None,
    forecast_basis: float | None = None,
    outcome: str | int = 0,
    error_code: str = "",
    include_limits: bool = False,
) -> meter_pb2.GetUsageRequest:
    """group_by: "subject", "provider", "model", "operation", "label", "time", "error_code" (or GroupBy
    values); time_bucket: "hour", "day", "week", "month"; order_by: "cost", "calls", "total_tokens",
    "errors", "latency_p95", "error_rate"; outcome: "success" or "error" (default both);
    forecast_horizon, forecast_basis: seconds; include_limits: add the response's `limits`, the status
    (used, remaining, projected_exhausted_at) of each limit the filter selects, as of now."""
    return meter_pb2.GetUsageRequest(
        start=_timestamp(start),
        end=_timestamp(end),
        filter=meter_pb2.UsageFilter(
            subject=subject,
            subject_prefix=subject_prefix,
            provider=provider,
            model=model,
            operation=operation,
            labels=dict(labels or {}),
            outcome=_enum(common_pb2.Outcome, _OUTCOME, outcome, "outcome"),
            error_code=error_code,
        ),
        group_by=[_enum(meter_pb2.GroupBy, _GROUP, g, "group_by") for g in group_by],
        label_key=label_key,
        time_bucket=_enum(meter_pb2.TimeBucket, _BUCKET, time_bucket, "time_bucket"),
        order_by=_enum(meter_pb2.UsageOrder, _ORDER, order_by, "order_by"),
        descending=descending,
        limit=limit,
        include_projection=include_projection,
        forecast_horizon=_duration(forecast_horizon),
        forecast_basis=_duration(forecast_basis),
        include_limits=include_limits,
    )


def list_calls_request(
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    page_size: int = 50,
    page_token: str = "",
    min_cost_nanos: int = 0,
    min_latency: float | None = None,
    min_total_tokens: int = 0,
    min_cached_read_tokens: int = 0,
    order_by: str | int = 0,
    **filters,
) -> meter_pb2.ListCallsRequest:
    """filters: UsageFilter fields (subject, provider, outcome, error_code...); min_latency in seconds;
    order_by: "newest", "cost" (dearest first), "latency" (slowest first) or a CallOrder value."""
    return meter_pb2.ListCallsRequest(
        start=_timestamp(start),
        end=_timestamp(end),
        filter=meter_pb2.UsageFilter(**filters),
        page_size=page_size,
        page_token=page_token,
        min_cost_nanos=min_cost_nanos,
        min_latency=_duration(min_latency),
        min_total_tokens=min_total_tokens,
        min_cached_read_tokens=min_cached_read_tokens,
        order_by=_enum(meter_pb2.CallOrder, _CALL_ORDER, order_by, "order_by"),
    )


def recommendations_request(
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    candidate_models: Iterable[str] = (),
    max_alternatives: int = 0,
    target_cache_hit_rate_bp: int | None = None,
    max_hot_spots: int = 0,
    min_calls: int = 0,
    **filters,
) -> meter_pb2.GetRecommendationsRequest:
    """candidate_models: "provider/model" strings (empty: the same provider's catalog models);
    target_cache_hit_rate_bp: basis points (5000 = 50%); filters: UsageFilter fields."""
    return meter_pb2.GetRecommendationsRequest(
        start=_timestamp(start),
        end=_timestamp(end),
        filter=meter_pb2.UsageFilter(**filters),
        candidate_models=list(candidate_models),
        max_alternatives=max_alternatives,
        target_cache_hit_rate_bp=target_cache_hit_rate_bp,
        max_hot_spots=max_hot_spots,
        min_calls=min_calls,
    )


def alerts_request(
    since_id: int | None, min_severity: int, kinds: Iterable[int], subject_prefix: str, heartbeat_interval: float
) -> meter_pb2.StreamAlertsRequest:
    return meter_pb2.StreamAlertsRequest(
        since_id=since_id,
        min_severity=as_enum(common_pb2.Severity, min_severity),
        kinds=[as_enum(common_pb2.AlertKind, k) for k in kinds],
        subject_prefix=subject_prefix,
        heartbeat_interval=_duration(heartbeat_interval),
    )


@dataclass(frozen=True)
class BatchResult:
    """The answer to `record_many()`: counts over every chunk, plus each item's result (a
    `meter.v1.RecordCallResult`, whose `index` is the position in the list given)."""

    recorded: int
    duplicates: int
    failed: int
    spooled: int
    results: tuple[meter_pb2.RecordCallResult, ...]


# RecordCalls takes at most this many calls per request; record_many() sends chunks of it.
BATCH_LIMIT = 1000


class BatchTally:
    """Adds up record_many()'s chunks (the sync and async clients share it)."""

    def __init__(self) -> None:
        self.recorded = self.duplicates = self.failed = self.spooled = 0
        self.results: list[meter_pb2.RecordCallResult] = []

    def answered(self, reply: meter_pb2.RecordCallsResponse, offset: int) -> None:
        """A chunk Meter answered; its items' indexes become positions in the whole list."""
        self.recorded += reply.recorded
        self.duplicates += reply.duplicates
        self.failed += reply.failed
        for result in reply.results:
            result.index += offset
            self.results.append(result)

    def result(self) -> BatchResult:
        return BatchResult(self.recorded, self.duplicates, self.failed, self.spooled, tuple(self.results))
