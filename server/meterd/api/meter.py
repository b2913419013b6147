"""The data plane servicer: decode, call the domain and the store, encode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc
from meterd.api.alerts_codec import alert_to_proto, stream_request
from meterd.api.analytics_codec import (
    breakdown_to_proto,
    call_search,
    forecast_spec,
    forecast_to_proto,
    recommendation_query,
    recommendations_to_proto,
    recommendations_usage_query,
)
from meterd.api.convert import duration_us, from_ts, int64, micros, ts
from meterd.api.interceptor import current_principal, status_code
from meterd.api.limits_codec import status_to_proto
from meterd.api.validation import violations
from meterd.domain.call_search import validate_call_search
from meterd.domain.calls import CallInput, service_tier_violations, validate_call, validate_dimensions
from meterd.domain.errors import InvalidArgument, MeterError
from meterd.domain.pricing import CostBreakdown
from meterd.domain.quota import Estimate
from meterd.domain.usage import (
    DEFAULT_RANGE,
    Bucket,
    Dimension,
    Order,
    UsageFilter,
    usage_filter,
    validate_usage_query,
)
from meterd.domain.usage_results import Aggregate, CallRow
from meterd.service.alerts import AlertStreams, Heartbeat
from meterd.service.metering import MeteringService, RecordOutcome
from meterd.service.quota import QuotaService
from meterd.service.recommendations import RecommendationService
from meterd.service.usage import UsageReport, UsageService


class MeterServicer(meter_pb2_grpc.MeterServicer):
    def __init__(
        self,
        quota: QuotaService,
        metering: MeteringService,
        usage: UsageService,
        *,
        clock: Callable[[], dt.datetime],
        backfill_horizon: dt.timedelta,
        max_future_skew: dt.timedelta,
        alerts: AlertStreams,
        alert_heartbeat: float,
        recommendations: RecommendationService,
    ) -> None:
        self.recommendations = recommendations
        self.alerts = alerts
        self.alert_heartbeat = alert_heartbeat
        self.usage = usage
        self.quota = quota
        self.metering = metering
        self.clock = clock
        self.backfill_horizon = backfill_horizon
        self.max_future_skew = max_future_skew

    async def CheckQuota(self, request, context):
        dims, violations = validate_dimensions(
            request.subject, request.provider, request.model, request.operation, dict(request.labels)
        )
        violations += service_tier_violations(request.service_tier)
        if violations:
            raise InvalidArgument(violations)
        result = await self.quota.check(
            current_principal(),
            dims,
            _estimate(request.estimate),
            reserve=request.mode == meter_pb2.CHECK_MODE_RESERVE,
            reservation_id=request.reservation_id,
            ttl=request.reservation_ttl.ToTimedelta() if request.HasField("reservation_ttl") else None,
            service_tier=request.service_tier,
        )
        reply = meter_pb2.CheckQuotaResponse(
            allowed=result.allowed,
            limits=[status_to_proto(s) for s in result.states],
            no_limits_matched=not result.states,
            estimated_cost_nanos=result.estimated_cost_nanos,
            unpriced=result.unpriced,
            reservation_id=result.reservation_id,
            reservation_expires_at=ts(result.expires_at) if result.reservation_id else None,
            evaluated_at=ts(result.at),
        )
        if result.retry_after is not None:
            reply.retry_after.FromTimedelta(result.retry_after)
        return reply

    async def ExtendReservation(self, request, context):
        result = await self.quota.extend(
            current_principal(),
            request.reservation_id,
            _estimate(request.additional, default_requests=0),
            request.ttl.ToTimedelta() if request.HasField("ttl") else None,
        )
        reply = meter_pb2.ExtendReservationResponse(
            allowed=result.allowed,
            limits=[status_to_proto(s) for s in result.states],
            reservation_expires_at=ts(result.expires_at),
            reserved_cost_nanos=result.reserved_cost_nanos,
        )
        if result.retry_after is not None:
            reply.retry_after.FromTimedelta(result.retry_after)
        return reply

    async def ReleaseReservation(self, request, context):
        released = await self.quota.release(current_principal(), request.reservation_id)
        return meter_pb2.ReleaseReservationResponse(released=released)

    async def RecordCall(self, request, context):
        reply = meter_pb2.RecordCallResponse()
        _fill_record_response(reply, await self.metering.record(current_principal(), self._decode_call(request)))
        return reply

    async def RecordCalls(self, request, context):
        # The bounds layer has checked the list (1..MAX_BATCH items) but not the items: each is checked
        # here on its own, so one bad item gets its own error and never fails the others.
        decoded: list[CallInput | MeterError] = []
        for item in request.calls:
            try:
                if found := violations(item):
                    raise InvalidArgument(found)
                decoded.append(self._decode_call(item))
            except MeterError as exc:
                decoded.append(exc)
        valid = [d for d in decoded if isinstance(d, CallInput)]
        # Queued together, the items share group-commit batches (a whole request fits in one).
        recorded = iter(await self.metering.record_many(current_principal(), valid) if valid else ())
        reply = meter_pb2.RecordCallsResponse()
        for index, item in enumerate(decoded):
            outcome = next(recorded) if isinstance(item, CallInput) else item
            result = reply.results.add(index=index)
            if isinstance(outcome, MeterError):
                result.error_code = status_code(outcome).name
                result.error_message = str(outcome)
                reply.failed += 1
                continue
            _fill_record_response(result.response, outcome)
            if outcome.result.duplicate:
                reply.duplicates += 1
            else:
                reply.recorded += 1
        return reply

    def _decode_call(self, r: meter_pb2.RecordCallRequest) -> CallInput:
        dims, violations = validate_dimensions(r.subject, r.provider, r.model, r.operation, dict(r.labels))
        u = r.usage
        return validate_call(
            call_id=r.call_id,
            dims=dims,
            violations=violations,
            occurred_at=from_ts(r, "occurred_at"),
            now=self.clock(),
            backfill_horizon=self.backfill_horizon,
            max_future_skew=self.max_future_skew,
            metadata=dict(r.metadata),
            counts={
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cached_read_tokens": u.cached_read_tokens,
                "cache_write_tokens": u.cache_write_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "requests": u.requests if u.HasField("requests") else 1,
                "units": u.units,
            },
            reservation_id=r.reservation_id,
            usage_given=r.HasField("usage"),
            latency_us=micros(r, "latency"),
            ttft_us=micros(r, "time_to_first_token"),
            retry_count=r.retry_count,
            success=r.outcome != common_pb2.OUTCOME_ERROR,
            error_code=r.error_code,
            error_message=r.error_message,
            client_cost_nanos=r.cost_nanos if r.HasField("cost_nanos") else None,
            service_tier=r.service_tier,
        )

    async def GetUsage(self, request, context):
        violations: list[tuple[str, str]] = []
        query = validate_usage_query(
            start=from_ts(request, "start"),
            end=from_ts(request, "end"),
            now=self.clock(),
            filter=_usage_filter(request.filter, violations),
            group_by=[_enum(_GROUP_BY, g, "group_by", violations) for g in request.group_by],
            label_key=request.label_key,
            bucket=_TIME_BUCKETS.get(request.time_bucket),
            order=_enum(_ORDERS, request.order_by, "order_by", violations),
            descending=request.descending,
            limit=request.limit,
            projection=request.include_projection,
            violations=violations,
        )
        report = await self.usage.usage(
            current_principal().tenant_id,
            query,
            forecast=forecast_spec(request),
            limits_at=self.clock() if request.include_limits else None,
        )
        reply = _usage_response(report)
        if report.forecast is not None:
            reply.forecast.CopyFrom(forecast_to_proto(report.forecast))
        reply.limits.extend(status_to_proto(state) for state in report.limits or ())
        return reply

    async def ListCalls(self, request, context):
        violations: list[tuple[str, str]] = []
        query = validate_call_search(
            start=from_ts(request, "start"),
            end=from_ts(request, "end"),
            filter=_usage_filter(request.filter, violations),
            search=call_search(request, violations),
            page_size=request.page_size,
            page_token=request.page_token,
            violations=violations,
        )
        page = await self.usage.list_calls(current_principal().tenant_id, query)
        return meter_pb2.ListCallsResponse(
            calls=[_call_record(c) for c in page.calls], next_page_token=page.next_page_token
        )

    async def GetRecommendations(self, request, context):
        violations: list[tuple[str, str]] = []
        f = _usage_filter(request.filter, violations)
        query = recommendations_usage_query(request, f, self.clock(), violations, DEFAULT_RANGE)
        report = await self.recommendations.recommend(
            current_principal().tenant_id, query, recommendation_query(request)
        )
        return recommendations_to_proto(report)

    async def StreamAlerts(self, request, context):
        f, since_id, heartbeat = stream_request(current_principal().tenant_id, request, self.alert_heartbeat)
        async for item in self.alerts.stream(f, since_id, heartbeat):
            if isinstance(item, Heartbeat):
                yield meter_pb2.StreamAlertsResponse(
                    heartbeat=meter_pb2.Heartbeat(
                        server_time=ts(item.server_time), last_id=item.last_id, resume_id=item.resume_id
                    )
                )
            else:
                yield meter_pb2.StreamAlertsResponse(alert=alert_to_proto(item))


def _estimate(e: meter_pb2.Estimate, default_requests: int = 1) -> Estimate:
    return Estimate(
        input_tokens=e.input_tokens,
        max_output_tokens=e.max_output_tokens,
        cached_read_tokens=e.cached_read_tokens,
        requests=e.requests if e.HasField("requests") else default_requests,
        units=e.units,
        cost_nanos=e.cost_nanos if e.HasField("cost_nanos") else None,
    )


_COST_SOURCES = {
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


def _usage_filter(f: meter_pb2.UsageFilter, violations: list[tuple[str, str]]) -> UsageFilter:
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


def _usage_response(report: UsageReport) -> meter_pb2.GetUsageResponse:
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


def _call_record(c: CallRow) -> meter_pb2.CallRecord:
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
        cost_source=_COST_SOURCES.get(c.cost_source, common_pb2.COST_SOURCE_UNSPECIFIED),
        price_id=c.price_id,
        reservation_id=c.reservation_id or "",
        api_key_id=c.api_key_id,
        metadata=c.metadata,
        cost_breakdown=None if c.cost_parts is None else breakdown_to_proto(CostBreakdown.from_tuple(c.cost_parts)),
        service_tier=c.service_tier,
    )


def _fill_record_response(reply: meter_pb2.RecordCallResponse, outcome: RecordOutcome) -> None:
    result = outcome.result
    reply.call_id = result.call_id
    reply.duplicate = result.duplicate
    reply.cost_nanos = result.cost_nanos
    reply.cost_source = _COST_SOURCES[result.cost_source]
    reply.price_id = result.price_id
    reply.reservation_settled = outcome.reservation_settled
    reply.limits.extend(status_to_proto(s) for s in outcome.states)
    reply.recorded_at.CopyFrom(ts(result.recorded_at))
    if result.cost_parts is not None:
        reply.cost_breakdown.CopyFrom(breakdown_to_proto(result.cost_parts))
