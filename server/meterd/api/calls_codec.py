"""ListCalls' search fields: proto to domain (the ranges are checked before, from domain/bounds.py)."""

from __future__ import annotations

from meter.v1 import meter_pb2
from meterd.api.convert import micros
from meterd.domain.call_search import CallOrder, CallSearch

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
