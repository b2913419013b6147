"""ListCalls search over a real port and database: minimums, error code, orders by cost and latency,
and keyset page tokens that stay exact when many calls tie (tests/e2e/test_usage.py's CALLS)."""

from __future__ import annotations

import base64
import dataclasses
import json

import grpc
import pytest

from e2e.test_usage import CALLS, at, list_all, ms, record_all, request_for
from meter.v1 import meter_pb2
from meter_testing.requests import field_violations

ORDER = meter_pb2  # CallOrder values


@pytest.fixture
async def data(env):
    """(meter stub, tenant) with test_usage's CALLS recorded for a new tenant."""
    _, meter, _, tenant, _ = env
    await record_all(meter, tenant, (request_for(c) for c in CALLS))
    return meter, tenant


def ids(records) -> list[str]:
    return [c.call_id for c in records]


@pytest.mark.parametrize(
    "fields, expected",
    [
        # Costs: c06 35,000 > c02 20,000 > c09 12,000 > c01 10,000 > c03 7,000 > c08 5,000 > c10 4,000 ...
        (dict(min_cost_nanos=10_000, order_by=ORDER.CALL_ORDER_COST), ["c06", "c02", "c09", "c01"]),
        (dict(min_cost_nanos=10_000), ["c09", "c06", "c02", "c01"]),  # newest first
        (dict(min_cost_nanos=35_001), []),
        # Latencies: c07 5 s > c05 3 s > c06 2.5 s > c02 1.2 s > c08 1 s > c09 0.9 s ...; c11 has none.
        (dict(min_latency=ms(1000), order_by=ORDER.CALL_ORDER_LATENCY), ["c07", "c05", "c06", "c02", "c08"]),
        (
            dict(order_by=ORDER.CALL_ORDER_LATENCY, page_size=3),
            ["c07", "c05", "c06", "c02", "c08", "c09", "c01", "c10", "c03", "c04"],
        ),  # fmt: skip
        # Tokens of every kind: c04 4,000, c02 4,000, c06 3,000 (reasoning is inside output), c09 2,300 ...
        (dict(min_total_tokens=3000), ["c06", "c04", "c02"]),
        (dict(min_cached_read_tokens=1), ["c09", "c06", "c02"]),
        (dict(min_cached_read_tokens=1000, order_by=ORDER.CALL_ORDER_COST), ["c06", "c02"]),
        (dict(error_code="upstream_error"), ["c08", "c05"]),
        (dict(error_code="upstream_error", min_latency=ms(2000)), ["c05"]),
        # With the usual filters too.
        (
            dict(filter=meter_pb2.UsageFilter(provider="openai"), order_by=ORDER.CALL_ORDER_COST, min_cost_nanos=1),
            ["c02", "c09", "c01", "c10", "c11", "c04"],
        ),  # fmt: skip
        # c07 (unpriced) and c05 both cost 0: the newer first.
        (dict(start=at(5), end=at(10), order_by=ORDER.CALL_ORDER_COST), ["c06", "c08", "c04", "c07", "c05"]),
    ],
)
async def test_search_filters_and_orders(data, fields, expected):
    meter, tenant = data
    assert ids(await list_all(meter, tenant, **fields)) == expected


async def test_ties_page_exactly_once_in_every_order(env):
    """60 calls on 4 costs, 3 latencies and 5 instants: every page size gives the reference order."""
    _, meter, _, tenant, _ = env
    calls = [
        dataclasses.replace(
            CALLS[0],
            id=f"t{i:02d}",
            at=at(9, i % 5),
            cost=1000 * (i % 4),
            latency_ms=None if i % 7 == 0 else 100 * (i % 3),
        )
        for i in range(60)
    ]
    await record_all(meter, tenant, (request_for(c) for c in calls))

    def newest(c):
        return (-c.at.timestamp(), c.id)

    by_cost = sorted(calls, key=lambda c: (-c.cost, *newest(c)))
    timed = [c for c in calls if c.latency_ms is not None]
    by_latency = sorted(timed, key=lambda c: (-c.latency_ms, *newest(c)))
    for order, reference in (
        (ORDER.CALL_ORDER_NEWEST, sorted(calls, key=newest)),
        (ORDER.CALL_ORDER_COST, by_cost),
        (ORDER.CALL_ORDER_LATENCY, by_latency),
    ):
        for size in (1, 4, 7, 15, 59, 60, 61):
            got = await list_all(meter, tenant, order_by=order, page_size=size)
            assert ids(got) == [c.id for c in reference], (order, size)


async def test_a_page_token_is_not_shifted_by_new_calls(data):
    meter, tenant = data
    auth = tenant.auth("read")
    first = await meter.ListCalls(
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_size=2), metadata=auth
    )
    assert ids(first.calls) == ["c06", "c02"]
    # A dearer call and one as dear as the cursor but newer land before the cursor: not on page 2.
    newer = [dataclasses.replace(CALLS[0], id="n1", at=at(10, 11), cost=99_000),
             dataclasses.replace(CALLS[0], id="n2", at=at(10, 11), cost=20_000)]  # fmt: skip
    await record_all(meter, tenant, (request_for(c) for c in newer))
    second = await meter.ListCalls(
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_size=3, page_token=first.next_page_token),
        metadata=auth,
    )
    assert ids(second.calls) == ["c09", "c01", "c03"]


def _retoken(token: str, **changes) -> str:
    content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    content.update(changes)
    return base64.urlsafe_b64encode(json.dumps(content).encode()).rstrip(b"=").decode()


async def test_altered_or_foreign_tokens_are_invalid_argument(data):
    meter, tenant = data
    auth = tenant.auth("read")
    first = await meter.ListCalls(
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_size=2), metadata=auth
    )
    token = first.next_page_token
    data_ = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for request in (
        # Edited content: another cost, time or id, a missing digest.
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=_retoken(token, k=data_["k"] - 1)),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=_retoken(token, t=data_["t"] + 1)),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=_retoken(token, c="c01")),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=_retoken(token, h="0" * 16)),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=_retoken(token, k="35000")),
        meter_pb2.ListCallsRequest(
            order_by=ORDER.CALL_ORDER_COST, page_token=base64.urlsafe_b64encode(b"[1]").decode()
        ),
        # The same token with another order or other minimums.
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_LATENCY, page_token=token),
        meter_pb2.ListCallsRequest(page_token=token),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, min_cost_nanos=1, page_token=token),
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, error_code="x", page_token=token),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await meter.ListCalls(request, metadata=auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(err.value)
    second = await meter.ListCalls(
        meter_pb2.ListCallsRequest(order_by=ORDER.CALL_ORDER_COST, page_token=token, page_size=1), metadata=auth
    )
    assert ids(second.calls) == ["c09"]


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(min_cost_nanos=-1), "min_cost_nanos"),
        (dict(min_cost_nanos=4 * 10**15 + 1), "min_cost_nanos"),
        (dict(min_latency=ms(8 * 86_400_000)), "min_latency"),
        (dict(min_total_tokens=-5), "min_total_tokens"),
        (dict(min_cached_read_tokens=10**8 + 1), "min_cached_read_tokens"),
        (dict(error_code="e" * 129), "error_code"),
        (dict(order_by=42), "order_by"),
    ],
)
async def test_out_of_range_search_fields(data, fields, field):
    meter, tenant = data
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.ListCalls(meter_pb2.ListCallsRequest(**fields), metadata=tenant.auth("read"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value)
