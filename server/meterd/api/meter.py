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
from meterd.api.convert import from_ts, micros, ts
from meterd.api.interceptor import current_principal, status_code
from meterd.api.limits_codec import status_to_proto
from meterd.api.usage_codec import COST_SOURCES, call_record, usage_filter_from_proto, usage_query, usage_response
from meterd.api.validation import violations
from meterd.domain.call_search import validate_call_search
from meterd.domain.calls import CallInput, service_tier_violations, validate_call, validate_dimensions
from meterd.domain.errors import InvalidArgument, MeterError
from meterd.domain.quota import Estimate
from meterd.domain.usage import DEFAULT_RANGE
from meterd.service.alerts import AlertStreams, Heartbeat
from meterd.service.metering import MeteringService, RecordOutcome
from meterd.service.quota import QuotaService
from meterd.service.recommendations import RecommendationService
from meterd.service.usage import UsageService


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
        query = usage_query(request, self.clock(), [])
        report = await self.usage.usage(
            current_principal().tenant_id,
            query,
            forecast=forecast_spec(request),
            limits_at=self.clock() if request.include_limits else None,
        )
        reply = usage_response(report)
        if report.forecast is not None:
            reply.forecast.CopyFrom(forecast_to_proto(report.forecast))
        reply.limits.extend(status_to_proto(state) for state in report.limits or ())
        return reply

    async def ListCalls(self, request, context):
        violations: list[tuple[str, str]] = []
        query = validate_call_search(
            start=from_ts(request, "start"),
            end=from_ts(request, "end"),
            filter=usage_filter_from_proto(request.filter, violations),
            search=call_search(request, violations),
            page_size=request.page_size,
            page_token=request.page_token,
            violations=violations,
        )
        page = await self.usage.list_calls(current_principal().tenant_id, query)
        return meter_pb2.ListCallsResponse(
            calls=[call_record(c) for c in page.calls], next_page_token=page.next_page_token
        )

    async def GetRecommendations(self, request, context):
        violations: list[tuple[str, str]] = []
        f = usage_filter_from_proto(request.filter, violations)
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


def _fill_record_response(reply: meter_pb2.RecordCallResponse, outcome: RecordOutcome) -> None:
    result = outcome.result
    reply.call_id = result.call_id
    reply.duplicate = result.duplicate
    reply.cost_nanos = result.cost_nanos
    reply.cost_source = COST_SOURCES[result.cost_source]
    reply.price_id = result.price_id
    reply.reservation_settled = outcome.reservation_settled
    reply.limits.extend(status_to_proto(s) for s in outcome.states)
    reply.recorded_at.CopyFrom(ts(result.recorded_at))
    if result.cost_parts is not None:
        reply.cost_breakdown.CopyFrom(breakdown_to_proto(result.cost_parts))
