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
    server_cpu_to_echo: float | None = None  # the server's CPU per RPC / the echo server's

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


def print_table(report: dict) -> None:
    print(f"\n{'scenario':<46} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x echo':>7} {'limit/s':>8} {'x limit':>7}"
          f" {'errors':>6} {'srv s/1k':>8} {'cpu/echo':>8} {'db s/1k':>8} {'base db':>8}")  # fmt: skip

    def cell(value, fmt: str, width: int) -> str:
        return f" {value:>{width}{fmt}}" if value is not None else f" {'':>{width}}"

    for r in report["results"]:
        ratio = f"{r['ratio_to_echo']:.2f}" if r["ratio_to_echo"] is not None else ""
        limit_fmt = ".1f" if (r.get("limit_rate") or 0) < 100 else ",.0f"  # a latency limit is in ms
        limit = cell(r.get("limit_rate"), limit_fmt, 8) + cell(r.get("ratio_to_limit"), ".2f", 7)
        cpu = "".join(
            cell(r.get(k), ".2f" if k == "server_cpu_to_echo" else ".3f", 8)
            for k in ("server_cpu_s_per_k", "server_cpu_to_echo", "db_cpu_s_per_k", "baseline_db_cpu_s_per_k")
        )
        print(f"{r['scenario']:<46} {r['rate']:>9,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {ratio:>7}{limit} "
              f"{r['errors']:>6}{cpu}  {r['note']}")  # fmt: skip
    print("srv s/1k, db s/1k: CPU seconds per 1,000 requests of the server under test and of PostgreSQL;")
    print("cpu/echo: the server's CPU per RPC / the echo server's (a pair is 2 RPCs);")
    print("base db: PostgreSQL's CPU per 1,000 for plain psycopg writing the same rows (PostgreSQL same work rows);")
    print("limit: 1 / (1/echo + 1/same work), what both jobs allow on these CPUs; x limit: Meter / limit")
    rss = report["server_rss_mb"]
    rounds = ", ".join(f"{mb} MB" for mb in rss["after_each_round"])
    print(f"\nserver RSS: {rss['before']} MB before the scenarios; after each round: {rounds}")


def disk_flush(directory: str, samples: int = 200) -> Result:
    """The disk's durable-write latency where PostgreSQL keeps its WAL: an 8 KiB write and fdatasync,
    `samples` times. Every RESERVE and RecordCall batch waits for one such flush at commit, so its p99
    is a floor under theirs that no server code removes."""
    import os

    path = os.path.join(directory, "bench-flush-probe")
    latencies = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(samples):
            os.write(fd, b"\0" * 8192)
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append((time.perf_counter() - started) * 1e3)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    # calls 0: a latency probe has no rate column.
    return Result("disk flush (8 KiB write + fdatasync)", 1, 0, 1.0, percentile(latencies, 0.5),
                  percentile(latencies, 0.99), 0, note="where PostgreSQL's WAL is; one per durable commit")  # fmt: skip
