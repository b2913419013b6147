"""Load generation and the figures it yields."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import grpc


@dataclasses.dataclass
class Result:
    scenario: str
    concurrency: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio_to_echo: float | None = None
    note: str = ""
    server_cpu_s_per_k: float | None = None  # CPU seconds per 1,000 requests (or calls), server process
    db_cpu_s_per_k: float | None = None  # the same, PostgreSQL (every backend)
    limit_rate: float | None = None  # 1 / (1/echo + 1/database doing the same rows), items per second
    ratio_to_limit: float | None = None
    baseline_db_cpu_s_per_k: float | None = None  # PostgreSQL CPU per 1,000 of plain psycopg's same rows

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def closed_loop(name: str, call: Callable[[int], Awaitable[int]], concurrency: int, seconds: float) -> Result:
    """`concurrency` workers calling back to back; `call` returns how many RPCs it made."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    items = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, counter, items
        while time.perf_counter() < deadline:
            counter += 1
            started = time.perf_counter()
            try:
                n = await call(counter)  # read items only after the await: workers interleave
                items += n
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(name, concurrency, items, elapsed, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, errors)  # fmt: skip


async def open_loop(name: str, call: Callable[[int], Awaitable[int]], rate: float, seconds: float) -> Result:
    """Requests started at a fixed rate whatever the latency (no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    start = time.perf_counter()
    tasks = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(i)  # one item per request here
        except grpc.aio.AioRpcError:
            errors += 1
            return
        latencies.append(time.perf_counter() - scheduled)

    i = 0
    while True:
        scheduled = start + i * interval
        if scheduled - start >= seconds:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
        i += 1
    await asyncio.gather(*tasks)
    latencies.sort()
    return Result(name, 0, len(latencies), seconds, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, errors, note=f"open loop at {rate:.0f}/s")  # fmt: skip
