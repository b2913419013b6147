"""Issue 16's analytics messages: ListCalls' search fields, GetUsage's forecast, GetRecommendations
(the ranges are checked before, from domain/bounds.py)."""

from __future__ import annotations

import datetime as dt

from meter.v1 import common_pb2, meter_pb2
from meterd.api.convert import duration_us, from_ts, int64, micros, ts
from meterd.domain.bounds import INT64_MAX
from meterd.domain.call_search import CallOrder, CallSearch
from meterd.domain.equivalences import CandidateSource
from meterd.domain.forecast import Forecast
from meterd.domain.pricing import CostBreakdown
from meterd.domain.recommendations import HotSpot, RecommendationQuery, validate_recommendation_query
from meterd.domain.usage import Dimension, Order, UsageFilter, UsageQuery, validate_usage_query
from meterd.service.recommendations import RecommendationReport

DEFAULT_FORECAST_BASIS = dt.timedelta(days=7)

_CALL_ORDERS = {
    meter_pb2.CALL_ORDER_UNSPECIFIED: CallOrder.NEWEST,
    meter_pb2.CALL_ORDER_NEWEST: CallOrder.NEWEST,
    meter_pb2.CALL_ORDER_COST: CallOrder.COST,
    meter_pb2.CALL_ORDER_LATENCY: CallOrder.LATENCY,
}


def call_search(request: meter_pb2.ListCallsRequest, violations: list[tuple[str, str]]) -> CallSearch:
    order = _CALL_ORDERS.get(request.order_by)
    if order is None:
        violations.append(("order_by", f"unknown value {request.order_by}"))
    return CallSearch(
        min_cost_nanos=request.min_cost_nanos,
        min_latency_us=micros(request, "min_latency") or 0,
        min_total_tokens=request.min_total_tokens,
        min_cached_read_tokens=request.min_cached_read_tokens,
        order=order or CallOrder.NEWEST,
    )


def forecast_spec(request: meter_pb2.GetUsageRequest) -> tuple[dt.timedelta, dt.timedelta] | None:
    """(horizon, basis) when a forecast was asked for."""
    horizon = micros(request, "forecast_horizon")
    if horizon is None:
        return None
    basis = micros(request, "forecast_basis")
    return dt.timedelta(microseconds=horizon), (
        dt.timedelta(microseconds=basis) if basis is not None else DEFAULT_FORECAST_BASIS
    )


def forecast_to_proto(f: Forecast) -> meter_pb2.Forecast:
    return meter_pb2.Forecast(
        basis_start=ts(f.basis_start),
        basis_end=ts(f.basis_end),
        basis_cost_nanos=int64(f.basis.cost_nanos),
        basis_calls=int64(f.basis.calls),
        basis_tokens=int64(f.basis.tokens),
        horizon_end=ts(f.horizon_end),
        projected_cost_nanos=int64(f.projected.cost_nanos),
        projected_calls=int64(f.projected.calls),
        projected_tokens=int64(f.projected.tokens),
    )


def recommendations_usage_query(
    request: meter_pb2.GetRecommendationsRequest,
    filter: UsageFilter,
    now: dt.datetime,
    violations: list[tuple[str, str]],
    default_range: dt.timedelta,
) -> UsageQuery:
    """The usage recommendations price: by provider and model, dearest first, every model."""
    return validate_usage_query(
        start=from_ts(request, "start"), end=from_ts(request, "end"), now=now, filter=filter,
        group_by=[Dimension.PROVIDER, Dimension.MODEL], label_key="", bucket=None, order=Order.COST,
        descending=True, limit=0, projection=False, violations=violations, default_range=default_range,
    )  # fmt: skip


def recommendation_query(request: meter_pb2.GetRecommendationsRequest) -> RecommendationQuery:
    return validate_recommendation_query(
        candidate_models=list(request.candidate_models),
        max_alternatives=request.max_alternatives,
        target_bp=request.target_cache_hit_rate_bp if request.HasField("target_cache_hit_rate_bp") else None,
        max_hot_spots=request.max_hot_spots,
        min_calls=request.min_calls,
    )


def breakdown_to_proto(b: CostBreakdown) -> common_pb2.CostBreakdown:
    return common_pb2.CostBreakdown(
        input_nanos=b.input, output_nanos=b.output, cached_read_nanos=b.cached_read, cache_write_nanos=b.cache_write,
        requests_nanos=b.requests, units_nanos=b.units, other_nanos=b.other, cache_savings_nanos=b.cache_savings,
    )  # fmt: skip


def _hot_spot(s: HotSpot) -> meter_pb2.HotSpot:
    a = s.stats
    return meter_pb2.HotSpot(
        provider=s.provider, model=s.model, calls=int64(a.calls), errors=int64(a.errors), error_rate=a.error_rate,
        latency_p95=duration_us(s.p95_us), cost_nanos=int64(a.cost_nanos),
    )  # fmt: skip


_SOURCES = {
    CandidateSource.REQUEST: meter_pb2.CANDIDATE_SOURCE_REQUEST,
    CandidateSource.EQUIVALENCE_LIST: meter_pb2.CANDIDATE_SOURCE_EQUIVALENCE_LIST,
    CandidateSource.SAME_PROVIDER: meter_pb2.CANDIDATE_SOURCE_SAME_PROVIDER,
}


def recommendations_to_proto(r: RecommendationReport) -> meter_pb2.GetRecommendationsResponse:
    reply = meter_pb2.GetRecommendationsResponse(start=ts(r.start), end=ts(r.end), priced_at=ts(r.priced_at))
    for m in r.models:
        a = m.stats
        row = reply.models.add(
            provider=m.provider, model=m.model, calls=int64(a.calls), input_tokens=int64(a.input_tokens),
            output_tokens=int64(a.output_tokens), cached_read_tokens=int64(a.cached_read_tokens),
            cache_write_tokens=int64(a.cache_write_tokens), requests=int64(a.requests), units=int64(a.units),
            recorded_cost_nanos=int64(a.cost_nanos),
            catalog_cost_nanos=int64(m.catalog_cost.total) if m.catalog_cost is not None else 0,
            price_id=m.price.price_id if m.price is not None else "", cache_hit_rate=a.cache_hit_rate,
            cache_savings_nanos=int64(a.cache_savings_nanos), target_cached_tokens_added=int64(m.cache_tokens_added),
            target_cache_saving_nanos=int64(m.cache_saving_nanos), candidate_source=_SOURCES[m.source],
            equivalence_groups=list(m.groups),
        )  # fmt: skip
        for alt in m.alternatives:
            row.alternatives.add(
                provider=alt.provider, model=alt.model, price_id=alt.price.price_id, cost_nanos=int64(alt.cost.total),
                cost_breakdown=breakdown_to_proto(alt.cost), saving_nanos=max(-INT64_MAX, int64(alt.saving_nanos)),
            )  # fmt: skip
    t = r.totals
    reply.cache.CopyFrom(
        meter_pb2.CacheSummary(
            input_tokens=int64(t.input_tokens),
            cached_read_tokens=int64(t.cached_read_tokens),
            cache_write_tokens=int64(t.cache_write_tokens),
            cache_hit_rate=t.cache_hit_rate,
            cache_savings_nanos=int64(t.cache_savings_nanos),
            target_cache_hit_rate_bp=r.target_bp,
            target_cache_saving_nanos=int64(r.target_cache_saving_nanos),
        )  # fmt: skip
    )
    reply.error_rate_models.extend(_hot_spot(s) for s in r.hot.error_rate_models)
    reply.error_rate_providers.extend(_hot_spot(s) for s in r.hot.error_rate_providers)
    reply.latency_models.extend(_hot_spot(s) for s in r.hot.latency_models)
    reply.latency_providers.extend(_hot_spot(s) for s in r.hot.latency_providers)
    reply.unpriced_candidates.extend(f"{p}/{m}" for p, m in r.unpriced_candidates)
    return reply
