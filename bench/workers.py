"""`meter serve --workers 2` against `--workers 1`, the same client, in the same run.

The kernel spreads connections (not RPCs) across the workers, so the client opens many connections
(one subchannel pool per channel) for both; the figure that matters is the ratio."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from bench.cpu import postgres_cpu, tree_cpu
from bench.measure import Result, closed_loop
from meter.v1 import meter_pb2, meter_pb2_grpc

CONNECTIONS = 16

Call = Callable[[int], Awaitable[int]]


Stubs = list[meter_pb2_grpc.MeterStub]


def comparison_scenarios(check_request, record_request, auth) -> list[tuple[str, Callable[[Stubs], Call]]]:
    """CHECK_ONLY, RESERVE and RecordCall over 10k subjects, each a call factory over given stubs."""

    def checks(mode):
        def make(stubs: Stubs) -> Call:
            async def call(i: int) -> int:
                reply = await stubs[i % len(stubs)].CheckQuota(check_request(i, mode), metadata=auth)
                assert reply.allowed
                return 1

            return call

        return make

    def records(stubs: Stubs) -> Call:
        async def call(i: int) -> int:
            reply = await stubs[i % len(stubs)].RecordCall(record_request(i), metadata=auth)
            assert not reply.duplicate
            return 1

        return call

    return [
        ("CHECK_ONLY", checks(meter_pb2.CHECK_MODE_CHECK_ONLY)),
        ("RESERVE, 10k subjects", checks(meter_pb2.CHECK_MODE_RESERVE)),
        ("RecordCall, 10k subjects", records),
    ]


def start_workers_meter(url: str, workers: int, log: Path, start_process) -> tuple:
    args = [sys.executable, "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
            "--workers", str(workers), "--log-level", "INFO"]  # fmt: skip
    return start_process(args, log)


async def workers_comparison(
    meters: list[tuple[int, int, int]],  # (workers, port, pid)
    scenarios: list[tuple[str, Callable[[list[meter_pb2_grpc.MeterStub]], Call]]],
    pgdata: Path,
    concurrency: int,
    seconds: float,
    warmup: float,
) -> list[Result]:
    results = []
    for name, make_call in scenarios:
        base: Result | None = None
        for workers, port, pid in meters:
            options = [("grpc.use_local_subchannel_pool", 1)]
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(CONNECTIONS)]
            call = make_call([meter_pb2_grpc.MeterStub(c) for c in channels])
            label = f"{name}, --workers {workers}"
            await closed_loop(label, call, concurrency, warmup)
            before = tree_cpu(pid), postgres_cpu(pgdata)
            result = await closed_loop(label, call, concurrency, seconds)
            if result.calls:
                result.server_cpu_s_per_k = (tree_cpu(pid) - before[0]) * 1000 / result.calls
                result.db_cpu_s_per_k = (postgres_cpu(pgdata) - before[1]) * 1000 / result.calls
            base = base or result
            result.ratio_to_echo = result.rate / base.rate
            result.note = f"ratio column: / --workers {meters[0][0]}; {CONNECTIONS} connections"
            print(f"  {label}: {result.rate:,.0f}/s", file=sys.stderr, flush=True)
            results.append(result)
            for c in channels:
                await c.close()
    return results
