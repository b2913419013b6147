"""Limits with their current use, read through the public API only.

The API has no "limit status" read (CheckQuota would count a denial for a limit already over, and
needs a subject), so use is recomputed with GetUsage over the limit's current window with the
limit's selector as the filter: recorded calls only (live reservations are not included), and, as
GetUsage answers from hourly rollups unless labels are involved, a window shorter than an hour is
read at hour granularity (marked approximate)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meterd.console import fmt
from meterd.domain.forecast import exhaustion_at
from meterd.domain.windows import WindowKind, WindowSpec, window_end, window_start

_KINDS = {
    common_pb2.WINDOW_KIND_MINUTE: WindowKind.MINUTE,
    common_pb2.WINDOW_KIND_HOUR: WindowKind.HOUR,
    common_pb2.WINDOW_KIND_DAY: WindowKind.DAY,
    common_pb2.WINDOW_KIND_WEEK: WindowKind.WEEK,
    common_pb2.WINDOW_KIND_MONTH: WindowKind.MONTH,
    common_pb2.WINDOW_KIND_FIXED: WindowKind.FIXED,
    common_pb2.WINDOW_KIND_SLIDING: WindowKind.SLIDING,
}
METRICS = {
    common_pb2.METRIC_REQUESTS: "requests",
    common_pb2.METRIC_INPUT_TOKENS: "input tokens",
    common_pb2.METRIC_OUTPUT_TOKENS: "output tokens",
    common_pb2.METRIC_TOTAL_TOKENS: "total tokens",
    common_pb2.METRIC_COST_NANOS: "cost",
    common_pb2.METRIC_UNITS: "units",
    common_pb2.METRIC_FAILED_CALLS: "failed calls",
}
_ORDER = {
    common_pb2.METRIC_COST_NANOS: "cost",
    common_pb2.METRIC_FAILED_CALLS: "errors",
    common_pb2.METRIC_INPUT_TOKENS: "total_tokens",
    common_pb2.METRIC_OUTPUT_TOKENS: "total_tokens",
    common_pb2.METRIC_TOTAL_TOKENS: "total_tokens",
}


def metric_value(metric: int, stats: meter_pb2.UsageStats) -> int:
    """What a limit's counter would hold for these calls (input tokens include cached ones)."""
    inputs = stats.input_tokens + stats.cached_read_tokens + stats.cache_write_tokens
    values: dict[int, int] = {
        common_pb2.METRIC_REQUESTS: stats.requests,
        common_pb2.METRIC_INPUT_TOKENS: inputs,
        common_pb2.METRIC_OUTPUT_TOKENS: stats.output_tokens,
        common_pb2.METRIC_TOTAL_TOKENS: inputs + stats.output_tokens,
        common_pb2.METRIC_COST_NANOS: stats.cost_nanos,
        common_pb2.METRIC_UNITS: stats.units,
        common_pb2.METRIC_FAILED_CALLS: stats.errors,
    }
    return values.get(metric, 0)


def amount(metric: int, value: int) -> str:
    return fmt.usd(value) if metric == common_pb2.METRIC_COST_NANOS else fmt.number(value)


def window_of(limit: admin_pb2.Limit) -> WindowSpec:
    kind = _KINDS.get(limit.window.kind, WindowKind.DAY)
    return WindowSpec(kind, int(limit.window.duration.seconds) if kind.has_duration else 0)


def window_label(spec: WindowSpec) -> str:
    return f"{spec.kind} {spec.seconds}s" if spec.kind.has_duration else str(spec.kind)


def current_window(spec: WindowSpec, now: dt.datetime) -> tuple[dt.datetime, dt.datetime | None]:
    """[start, reset): a sliding window has no reset, it always covers the last `duration`."""
    if spec.kind is WindowKind.SLIDING:
        return now - spec.duration, None
    return window_start(spec, now), window_end(spec, now)


@dataclass
class LimitUse:
    limit: admin_pb2.Limit
    window: str
    used: int
    percent: float
    reset_at: dt.datetime | None
    runout_at: dt.datetime | None  # at the window's average rate so far; None when it will not run out
    partition_note: str
    approximate: bool

    @property
    def metric(self) -> str:
        return METRICS.get(self.limit.metric, "?")

    @property
    def used_text(self) -> str:
        return amount(self.limit.metric, self.used)

    @property
    def max_text(self) -> str:
        return amount(self.limit.metric, self.limit.max)

    @property
    def action(self) -> str:
        return common_pb2.LimitAction.Name(self.limit.action).removeprefix("LIMIT_ACTION_").lower()


def runout(used: int, maximum: int, start: dt.datetime, now: dt.datetime, reset: dt.datetime | None):
    """When use reaches max at the average rate since the window's start, if before the reset (the
    rule of LimitStatus.projected_exhausted_at; a window without a reset looks a year ahead)."""
    horizon = reset if reset is not None else now + dt.timedelta(days=366)
    return exhaustion_at(used, maximum, start, now, horizon, sliding=False)


def _filter(selector: common_pb2.Selector) -> dict:
    return {
        "subject": selector.subject,
        "subject_prefix": selector.subject_prefix,
        "provider": selector.provider,
        "model": selector.model,
        "operation": selector.operation,
        "labels": dict(selector.labels),
    }


async def limit_use(client, limit: admin_pb2.Limit, now: dt.datetime) -> LimitUse:
    spec = window_of(limit)
    start, reset = current_window(spec, now)
    per_subject = limit.partition == common_pb2.PARTITION_PER_SUBJECT
    query = {"start": start, "end": now, **_filter(limit.selector)}
    note = "shared"
    if per_subject:
        # The fullest subject is what matters: one row, ordered by the metric when GetUsage can.
        query.update(group_by=["subject"], order_by=_ORDER.get(limit.metric, "calls"), descending=True, limit=1)
    response = await client.usage(**query)
    if per_subject:
        used = metric_value(limit.metric, response.rows[0].stats) if response.rows else 0
        note = f"per subject, fullest: {response.rows[0].key.subject}" if response.rows else "per subject"
    elif limit.partition == common_pb2.PARTITION_PER_API_KEY:
        used = metric_value(limit.metric, response.totals)
        note = "per API key (all keys summed here)"
    else:
        used = metric_value(limit.metric, response.totals)
    approximate = (now - start) < dt.timedelta(hours=1) and not limit.selector.labels
    return LimitUse(
        limit=limit,
        window=window_label(spec),
        used=used,
        percent=100.0 * used / limit.max if limit.max else 0.0,
        reset_at=reset,
        runout_at=runout(used, limit.max, start, now, reset),
        partition_note=note,
        approximate=approximate,
    )


async def limits_with_use(client, now: dt.datetime) -> list[LimitUse]:
    limits = await client.list_limits()
    return list(await asyncio.gather(*(limit_use(client, limit, now) for limit in limits)))
