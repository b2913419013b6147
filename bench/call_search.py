"""ListCalls searches and GetRecommendations on the usage scenario's generated calls (bench/dataset.py:
n calls over 29 days, costs uniform in [0, $0.02), latencies in [50 ms, 3.05 s)),
one request at a time, and a search measured again without its index (migration 0013) to show
what the index is for."""

from __future__ import annotations

import time

import grpc
import psycopg
from google.protobuf import duration_pb2, timestamp_pb2

from bench.measure import Result, percentile
from meter.v1 import meter_pb2

SAMPLES = 40


async def _measure(name: str, call, samples: int, note: str) -> Result:
    latencies = []
    errors = 0
    started = time.perf_counter()
    try:
        await call()  # warm caches
        for _ in range(samples):
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)
    except grpc.aio.AioRpcError as exc:
        errors += 1
        note += f"; failed: {exc.code().name} {exc.details()}"
    latencies.sort()
    return Result(name, 1, len(latencies), time.perf_counter() - started, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, errors, note=note)  # fmt: skip


async def search_and_recommend(url: str, meter, auth, n_calls: int) -> list[Result]:
    end = timestamp_pb2.Timestamp()
    end.GetCurrentTime()
    week = timestamp_pb2.Timestamp(seconds=end.seconds - 7 * 86400)
    month = timestamp_pb2.Timestamp(seconds=end.seconds - 30 * 86400)

    def search(since=week, **fields) -> meter_pb2.ListCallsRequest:
        return meter_pb2.ListCallsRequest(start=since, end=end, page_size=50, **fields)

    dear = search(min_cost_nanos=19_000_000, order_by=meter_pb2.CALL_ORDER_COST)
    first_page = await meter.ListCalls(dear, metadata=auth)
    second = meter_pb2.ListCallsRequest()
    second.CopyFrom(dear)
    second.page_token = first_page.next_page_token
    scenarios = [
        ("ListCalls over $0.10 in 7 days, dearest first (none)",
         search(min_cost_nanos=100_000_000, order_by=meter_pb2.CALL_ORDER_COST)),
        ("ListCalls over $0.019 in 7 days, dearest first", dear),
        ("ListCalls over $0.019 in 7 days, dearest first, page 2", second),
        ("ListCalls over $0.019 in 7 days, newest first", search(min_cost_nanos=19_000_000)),
        ("ListCalls slower than 3 s in 7 days, slowest first",
         search(min_latency=duration_pb2.Duration(seconds=3), order_by=meter_pb2.CALL_ORDER_LATENCY)),
        ("ListCalls over $0.019 in 30 days, dearest first",
         search(month, min_cost_nanos=19_000_000, order_by=meter_pb2.CALL_ORDER_COST)),
        ("ListCalls slower than 3 s in 7 days, newest first", search(min_latency=duration_pb2.Duration(seconds=3))),
        ("ListCalls slower than 3 s in 30 days, slowest first",
         search(month, min_latency=duration_pb2.Duration(seconds=3), order_by=meter_pb2.CALL_ORDER_LATENCY)),
        ("ListCalls with error code 429 in 7 days, newest first",
         search(filter=meter_pb2.UsageFilter(error_code="429"))),
        ("ListCalls with error code 429 in 30 days, dearest first",
         search(month, filter=meter_pb2.UsageFilter(error_code="429"), order_by=meter_pb2.CALL_ORDER_COST)),
        ("ListCalls with cached tokens in 7 days, newest first", search(min_cached_read_tokens=1)),
        ("ListCalls with cached tokens in 30 days, dearest first",
         search(month, min_cached_read_tokens=1, order_by=meter_pb2.CALL_ORDER_COST)),
    ]  # fmt: skip
    note = f"{n_calls:,} calls over 29 days, page of 50"
    results = []
    for name, request in scenarios:
        results.append(await _measure(name, lambda r=request: meter.ListCalls(r, metadata=auth), SAMPLES, note))
    for name, request in (
        ("GetRecommendations, 30 days, same-provider candidates", meter_pb2.GetRecommendationsRequest(
            start=month, end=end, target_cache_hit_rate_bp=5000)),
        ("GetRecommendations, 30 days, one subject", meter_pb2.GetRecommendationsRequest(
            start=month, end=end, filter=meter_pb2.UsageFilter(subject="user:7"))),
    ):  # fmt: skip
        results.append(
            await _measure(
                name,
                lambda r=request: meter.GetRecommendations(r, metadata=auth),
                SAMPLES,
                f"{n_calls:,} calls, 8 models, rollups priced on the catalog",
            )  # fmt: skip
        )
    # The same dear search without calls_by_cost: the range's calls are read and sorted instead.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP INDEX calls_by_cost")
        try:
            results.append(
                await _measure(
                    "ListCalls over $0.019 in 7 days, dearest first, WITHOUT calls_by_cost",
                    lambda: meter.ListCalls(dear, metadata=auth),
                    5,
                    note,
                )  # fmt: skip
            )
        finally:
            await conn.execute(
                "CREATE INDEX calls_by_cost ON calls (tenant_id, cost_nanos DESC, occurred_at DESC, call_id)"
            )
    return results
