"""GetUsage's and ListCalls' messages: the filter, grouping and order decoded, the usage rows and
the calls encoded (the ranges are checked before, from domain/bounds.py)."""

from __future__ import annotations

import datetime as dt

from meter.v1 import common_pb2, meter_pb2
from meterd.api.analytics_codec import breakdown_to_proto
from meterd.api.convert import duration_us, from_ts, int64, ts
from meterd.domain.pricing import CostBreakdown
from meterd.domain.usage import Bucket, Dimension, Order, UsageFilter, UsageQuery, usage_filter, validate_usage_query
from meterd.domain.usage_results import Aggregate, CallRow
from meterd.service.usage import UsageReport

COST_SOURCES = {
    "catalog": common_pb2.COST_SOURCE_CATALOG,
    "client": common_pb2.COST_SOURCE_CLIENT,
    "unpriced": common_pb2.COST_SOURCE_UNPRICED,
}


_GROUP_BY = {
    meter_pb2.GROUP_BY_SUBJECT: Dimension.SUBJECT,
    meter_pb2.GROUP_BY_PROVIDER: Dimension.PROVIDER,
    meter_pb2.GROUP_BY_MODEL: Dimension.MODEL,
    meter_pb2.GROUP_BY_OPERATION: Dimension.OPERATION,
    meter_pb2.GROUP_BY_LABEL: Dimension.LABEL,
    meter_pb2.GROUP_BY_TIME: Dimension.TIME,
    meter_pb2.GROUP_BY_ERROR_CODE: Dimension.ERROR_CODE,
}
_TIME_BUCKETS = {
    meter_pb2.TIME_BUCKET_HOUR: Bucket.HOUR,
    meter_pb2.TIME_BUCKET_DAY: Bucket.DAY,
    meter_pb2.TIME_BUCKET_WEEK: Bucket.WEEK,
    meter_pb2.TIME_BUCKET_MONTH: Bucket.MONTH,
}
_ORDERS = {
    meter_pb2.USAGE_ORDER_UNSPECIFIED: Order.KEYS,
    meter_pb2.USAGE_ORDER_COST: Order.COST,
    meter_pb2.USAGE_ORDER_CALLS: Order.CALLS,
    meter_pb2.USAGE_ORDER_TOTAL_TOKENS: Order.TOTAL_TOKENS,
    meter_pb2.USAGE_ORDER_ERRORS: Order.ERRORS,
    meter_pb2.USAGE_ORDER_LATENCY_P95: Order.LATENCY_P95,
    meter_pb2.USAGE_ORDER_ERROR_RATE: Order.ERROR_RATE,
}
_OUTCOMES = {common_pb2.OUTCOME_UNSPECIFIED: None, common_pb2.OUTCOME_SUCCESS: True, common_pb2.OUTCOME_ERROR: False}


def _enum(mapping: dict, value: int, field: str, violations: list[tuple[str, str]]):
    """The domain value of a proto enum value; unknown (or UNSPECIFIED where it means nothing) is a violation."""
    if value not in mapping:
        violations.append((field, f"unknown or unspecified value {value}"))
        return None
    return mapping[value]


def usage_filter_from_proto(f: meter_pb2.UsageFilter, violations: list[tuple[str, str]]) -> UsageFilter:
    if f.outcome not in _OUTCOMES:
        violations.append(("filter.outcome", f"unknown value {f.outcome}"))
    return usage_filter(
        subject=f.subject,
        subject_prefix=f.subject_prefix,
        provider=f.provider,
        model=f.model,
        operation=f.operation,
        labels=dict(f.labels),
        success=_OUTCOMES.get(f.outcome),
        error_code=f.error_code,
    )


def _stats(a: Aggregate) -> meter_pb2.UsageStats:
    return meter_pb2.UsageStats(
        calls=int64(a.calls),
        successes=int64(a.successes),
        errors=int64(a.errors),
        error_rate=a.error_rate,
        input_tokens=int64(a.input_tokens),
        output_tokens=int64(a.output_tokens),
        cached_read_tokens=int64(a.cached_read_tokens),
        cache_write_tokens=int64(a.cache_write_tokens),
        reasoning_tokens=int64(a.reasoning_tokens),
        requests=int64(a.requests),
        units=int64(a.units),
        cost_nanos=int64(a.cost_nanos),
        unpriced_calls=int64(a.unpriced_calls),
        cost_nanos_per_1k_tokens=a.cost_nanos_per_1k_tokens,
        cache_hit_rate=a.cache_hit_rate,
        latency_avg=duration_us(a.latency_avg_us),
        latency_p50=duration_us(a.latency_percentile_us(0.5)),
        latency_p95=duration_us(a.latency_percentile_us(0.95)),
        latency_p99=duration_us(a.latency_percentile_us(0.99)),
        output_tokens_per_second=a.output_tokens_per_second,
        retry_count=int64(a.retry_count),
        cost_breakdown=common_pb2.CostBreakdown(
            input_nanos=a.cost_input_nanos,
            output_nanos=a.cost_output_nanos,
            cached_read_nanos=a.cost_cached_read_nanos,
            cache_write_nanos=a.cost_cache_write_nanos,
            requests_nanos=a.cost_requests_nanos,
            units_nanos=a.cost_units_nanos,
            other_nanos=a.cost_other_nanos,
            cache_savings_nanos=a.cache_savings_nanos,
        ),
    )


def usage_response(report: UsageReport) -> meter_pb2.GetUsageResponse:
    reply = meter_pb2.GetUsageResponse(start=ts(report.start), end=ts(report.end))
    for row in report.rows:
        k = row.key
        reply.rows.add(
            key=meter_pb2.UsageKey(
                subject=k.subject,
                provider=k.provider,
                model=k.model,
                operation=k.operation,
                label_value=k.label_value,
                bucket_start=ts(k.bucket_start),
                error_code=k.error_code,
            ),
            stats=_stats(row.stats),
        )
    reply.totals.CopyFrom(_stats(report.totals))
    reply.totals.expired_reservations = int64(report.expired_reservations)
    if report.projection is not None:
        p = report.projection
        reply.projection.CopyFrom(
            meter_pb2.Projection(
                month_to_date_cost_nanos=int64(p.month_to_date_cost_nanos),
                daily_run_rate_cost_nanos=int64(p.daily_run_rate_cost_nanos),
                projected_month_cost_nanos=int64(p.projected_month_cost_nanos),
                basis_days=p.basis_days,
                month_end=ts(p.month_end),
            )
        )
    return reply


def call_record(c: CallRow) -> meter_pb2.CallRecord:
    return meter_pb2.CallRecord(
        call_id=c.call_id,
        subject=c.subject,
        provider=c.provider,
        model=c.model,
        operation=c.operation,
        labels=c.labels,
        usage=common_pb2.Usage(
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cached_read_tokens=c.cached_read_tokens,
            cache_write_tokens=c.cache_write_tokens,
            reasoning_tokens=c.reasoning_tokens,
            requests=c.requests,
            units=c.units,
        ),
        latency=duration_us(c.latency_us),
        time_to_first_token=duration_us(c.ttft_us),
        retry_count=c.retry_count,
        outcome=common_pb2.OUTCOME_SUCCESS if c.success else common_pb2.OUTCOME_ERROR,
        error_code=c.error_code,
        error_message=c.error_message,
        occurred_at=ts(c.occurred_at),
        recorded_at=ts(c.recorded_at),
        cost_nanos=c.cost_nanos,
        cost_source=COST_SOURCES.get(c.cost_source, common_pb2.COST_SOURCE_UNSPECIFIED),
        price_id=c.price_id,
        reservation_id=c.reservation_id or "",
        api_key_id=c.api_key_id,
        metadata=c.metadata,
        cost_breakdown=None if c.cost_parts is None else breakdown_to_proto(CostBreakdown.from_tuple(c.cost_parts)),
        service_tier=c.service_tier,
    )


def usage_query(request: meter_pb2.GetUsageRequest, now: dt.datetime, violations: list[tuple[str, str]]) -> UsageQuery:
    """The GetUsage request as a validated query (InvalidArgument with every violation found)."""
    return validate_usage_query(
        start=from_ts(request, "start"),
        end=from_ts(request, "end"),
        now=now,
        filter=usage_filter_from_proto(request.filter, violations),
        group_by=[_enum(_GROUP_BY, g, "group_by", violations) for g in request.group_by],
        label_key=request.label_key,
        bucket=_TIME_BUCKETS.get(request.time_bucket),
        order=_enum(_ORDERS, request.order_by, "order_by", violations),
        descending=request.descending,
        limit=request.limit,
        projection=request.include_projection,
        violations=violations,
    )
