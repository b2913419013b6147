"""Issue 16's analytics messages: ListCalls' search fields, GetUsage's forecast, GetRecommendations
(the ranges are checked before, from domain/bounds.py)."""

from __future__ import annotations

import datetime as dt

from meter.v1 import meter_pb2
from meterd.api.convert import micros, ts
from meterd.domain.bounds import INT64_MAX
from meterd.domain.call_search import CallOrder, CallSearch
from meterd.domain.forecast import Forecast

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
        error_code=request.error_code,
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


def _i64(n: int) -> int:
    return min(n, INT64_MAX)


def forecast_to_proto(f: Forecast) -> meter_pb2.Forecast:
    return meter_pb2.Forecast(
        basis_start=ts(f.basis_start),
        basis_end=ts(f.basis_end),
        basis_cost_nanos=_i64(f.basis.cost_nanos),
        basis_calls=_i64(f.basis.calls),
        basis_tokens=_i64(f.basis.tokens),
        horizon_end=ts(f.horizon_end),
        projected_cost_nanos=_i64(f.projected.cost_nanos),
        projected_calls=_i64(f.projected.calls),
        projected_tokens=_i64(f.projected.tokens),
    )
