"""The data plane servicer: decode, call the domain and the store, encode."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc
from meterd.api.convert import from_ts, micros, ts
from meterd.api.interceptor import current_principal, status_code
from meterd.api.limits_codec import status_to_proto
from meterd.domain.calls import CallInput, validate_call, validate_dimensions
from meterd.domain.errors import InvalidArgument, MeterError, Unimplemented
from meterd.domain.quota import Estimate
from meterd.service.metering import MeteringService
from meterd.service.quota import QuotaService
from meterd.store.calls import CallStore

MAX_BATCH = 1000
DEFAULT_USAGE_RANGE = dt.timedelta(days=30)


class MeterServicer(meter_pb2_grpc.MeterServicer):
    def __init__(
        self,
        calls: CallStore,
        quota: QuotaService,
        metering: MeteringService,
        *,
        clock: Callable[[], dt.datetime],
        backfill_horizon: dt.timedelta,
        max_future_skew: dt.timedelta,
    ) -> None:
        self.calls = calls
        self.quota = quota
        self.metering = metering
        self.clock = clock
        self.backfill_horizon = backfill_horizon
        self.max_future_skew = max_future_skew

    async def CheckQuota(self, request, context):
        dims, violations = validate_dimensions(
            request.subject, request.provider, request.model, request.operation, dict(request.labels)
        )
        if violations:
            raise InvalidArgument(violations)
        result = await self.quota.check(
            current_principal(),
            dims,
            _estimate(request.estimate),
            reserve=request.mode == meter_pb2.CHECK_MODE_RESERVE,
            reservation_id=request.reservation_id,
            ttl=request.reservation_ttl.ToTimedelta() if request.HasField("reservation_ttl") else None,
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
        return await self._record(request)

    async def RecordCalls(self, request, context):
        if len(request.calls) > MAX_BATCH:
            raise InvalidArgument([("calls", f"at most {MAX_BATCH} calls per request, got {len(request.calls)}")])
        # Submitted together, the items share group-commit batches instead of queueing one by one.
        outcomes = await asyncio.gather(*(self._record(item) for item in request.calls), return_exceptions=True)
        reply = meter_pb2.RecordCallsResponse()
        for index, outcome in enumerate(outcomes):
            result = reply.results.add(index=index)
            if isinstance(outcome, MeterError):
                result.error_code = status_code(outcome).name
                result.error_message = str(outcome)
                reply.failed += 1
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result.response.CopyFrom(outcome)
                if outcome.duplicate:
                    reply.duplicates += 1
                else:
                    reply.recorded += 1
        return reply

    async def _record(self, request: meter_pb2.RecordCallRequest) -> meter_pb2.RecordCallResponse:
        outcome = await self.metering.record(current_principal(), self._decode_call(request))
        result = outcome.result
        return meter_pb2.RecordCallResponse(
            call_id=result.call_id,
            duplicate=result.duplicate,
            cost_nanos=result.cost_nanos,
            cost_source=_COST_SOURCES[result.cost_source],
            price_id=result.price_id,
            reservation_settled=outcome.reservation_settled,
            limits=[status_to_proto(s) for s in outcome.states],
            recorded_at=ts(result.recorded_at),
        )

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
        )

    async def GetUsage(self, request, context):
        if request.group_by or request.include_projection or _filter_set(request.filter):
            raise Unimplemented("GetUsage filters, group_by and projections are not built yet; ask for totals only")
        end = from_ts(request, "end") or self.clock()
        start = from_ts(request, "start") or end - DEFAULT_USAGE_RANGE
        if start >= end:
            raise InvalidArgument([("start", "must be before end")])
        t = await self.calls.totals(current_principal().tenant_id, start, end)
        total_tokens = t.input_tokens + t.output_tokens + t.cached_read_tokens + t.cache_write_tokens
        all_input = t.input_tokens + t.cached_read_tokens + t.cache_write_tokens
        totals = meter_pb2.UsageStats(
            calls=t.calls,
            successes=t.successes,
            errors=t.errors,
            error_rate=t.errors / t.calls if t.calls else 0.0,
            input_tokens=t.input_tokens,
            output_tokens=t.output_tokens,
            cached_read_tokens=t.cached_read_tokens,
            cache_write_tokens=t.cache_write_tokens,
            reasoning_tokens=t.reasoning_tokens,
            requests=t.requests,
            units=t.units,
            cost_nanos=t.cost_nanos,
            unpriced_calls=t.unpriced_calls,
            cost_nanos_per_1k_tokens=t.cost_nanos * 1000 / total_tokens if total_tokens else 0.0,
            cache_hit_rate=t.cached_read_tokens / all_input if all_input else 0.0,
            expired_reservations=t.expired_reservations,
        )
        if t.latency_count:
            totals.latency_avg.FromMicroseconds(t.latency_sum_us // t.latency_count)
        return meter_pb2.GetUsageResponse(totals=totals, start=ts(start), end=ts(end))

    async def ListCalls(self, request, context):
        raise Unimplemented("ListCalls (recent calls with paging) is not built yet")

    async def StreamAlerts(self, request, context):
        raise Unimplemented("StreamAlerts needs the alert engine (rules, evaluator, fan-out), not built yet")
        yield  # pragma: no cover - makes this an async generator like a real stream handler


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


def _filter_set(f: meter_pb2.UsageFilter) -> bool:
    return bool(f.subject or f.subject_prefix or f.provider or f.model or f.operation or f.labels or f.outcome)
