"""Noisy neighbour: tenant B's steady traffic alone, then while tenant A floods from another process.

B sends RecordCall and CheckQuota RESERVE alternately at a fixed rate (open loop, so a slow answer
cannot hide the wait of the next). A is a separate process with 256 calls in flight on one channel,
the way a misbehaving client floods:

- `tenant`: A's own key, every RESOURCE_EXHAUSTED retried at once (RetryInfo ignored);
- `tenant-retryinfo`: the same, but a refused call first sleeps the RetryInfo delay;
- `unknown-keys`: well-formed keys the server has never seen, retried at once.

One run measures B alone and B under each flood in interleaved segments (the flooders are paused
with SIGSTOP between theirs), so a neighbour on the shared machine that comes or goes mid-run weighs
on every figure alike instead of skewing one ratio. The figure that matters is B's p99 under a flood / B's
p99 alone.

The flooders run at `nice 19`: in production A's client runs on A's machines, not on the CPUs the server
and PostgreSQL share with B; here one box holds all of them, and a flooding client at normal priority
takes CPU time from the server by the kernel's scheduling, not through anything the server decides.
At nice 19 the flooder still gets every idle cycle (its rates are reported), while everything the server
and PostgreSQL do for A's requests competes with B's at equal priority. One more segment floods with A's
own key at normal priority, to show what sharing the machine itself costs.

Run by bench/run.py (`python -m bench.run --only noisy`); this module is also the flooder's entry
point: `python -m bench.noisy --flood tenant ADDRESS KEY CONCURRENCY` (it floods until a line on stdin).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc
from google.rpc import error_details_pb2, status_pb2

from bench.measure import Result, percentile
from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc

FLOODS = ("tenant", "tenant-retryinfo", "unknown-keys")
# (label, flood, niceness): the conditions measured against B alone, each in its own segments.
CONDITIONS = (
    ("tenant", "tenant", 19),
    ("tenant-retryinfo", "tenant-retryinfo", 19),
    ("unknown-keys", "unknown-keys", 19),
    ("tenant, flooder at normal priority", "tenant", 0),
)
SETTLE = 1.0  # seconds after a flood resumes or pauses before B is measured (the gate drains A's queue)
B_RATE = 50.0  # RPC/s, as in the measurement


def _record() -> meter_pb2.RecordCallRequest:
    return meter_pb2.RecordCallRequest(
        call_id=uuid.uuid4().hex, subject="user:1", provider="openai", model="gpt-4.1", operation="chat",
        usage=common_pb2.Usage(input_tokens=700, output_tokens=300), cost_nanos=1000,
    )  # fmt: skip


def _check() -> meter_pb2.CheckQuotaRequest:
    return meter_pb2.CheckQuotaRequest(
        subject="user:1", provider="openai", model="gpt-4.1", operation="chat", mode=meter_pb2.CHECK_MODE_RESERVE,
        estimate=meter_pb2.Estimate(input_tokens=800, max_output_tokens=400, cost_nanos=1000),
    )  # fmt: skip


def _key_process(url: str, tenant: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "meterd", "keys", "create", "--tenant", tenant, "--role", "admin", "--database-url", url],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


async def _phase(call: Callable[[int], Awaitable[int]], rate: float, seconds: float) -> tuple[list[float], int]:
    """Open loop: (sorted latencies in ms, errors) of requests started at a fixed rate."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(i)
        except grpc.aio.AioRpcError:
            errors += 1
            return
        latencies.append((time.perf_counter() - scheduled) * 1e3)

    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return sorted(latencies), errors


def _result(name: str, latencies: list[float], errors: int, seconds: float, note: str) -> Result:
    return Result(name, 0, len(latencies), seconds, percentile(latencies, 0.5), percentile(latencies, 0.99), errors,
                  note=note)  # fmt: skip


async def noisy_neighbour(url: str, port: int, seconds: float, cycles: int = 4) -> list[Result]:
    address = f"127.0.0.1:{port}"
    key_a, key_b = _key_process(url, "noisy-a"), _key_process(url, "noisy-b")
    auth_b = (("authorization", f"Bearer {key_b}"),)
    segment = seconds / cycles
    flooders = {}
    for label, mode, niceness in CONDITIONS:
        flooders[label] = await asyncio.create_subprocess_exec(
            "nice", "-n", str(niceness), sys.executable, "-m", "bench.noisy", "--flood", mode, address,
            "" if mode == "unknown-keys" else key_a, "256", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert (await flooders[label].stdout.readline()).strip() == b"flooding"
        flooders[label].send_signal(signal.SIGSTOP)
    samples: dict[str, list[float]] = {label: [] for label in ("alone", *flooders)}
    errors: Counter = Counter()
    segments: dict[str, list[str]] = {mode: [] for mode in samples}  # p99 of each segment, to see the spread
    async with grpc.aio.insecure_channel(address) as channel:
        meter = meter_pb2_grpc.MeterStub(channel)

        async def b(i: int) -> int:
            if i % 2:
                await meter.RecordCall(_record(), metadata=auth_b)
            else:
                await meter.CheckQuota(_check(), metadata=auth_b)
            return 1

        await _phase(b, B_RATE, SETTLE)  # warm-up; also drains what the flooders sent before they were paused
        for _ in range(cycles):
            for mode in samples:
                flooder = flooders.get(mode)
                if flooder:
                    flooder.send_signal(signal.SIGCONT)
                await _phase(b, B_RATE, SETTLE)  # the flood's onset (or the last one's queue draining)
                latencies, failed = await _phase(b, B_RATE, segment)
                if flooder:
                    flooder.send_signal(signal.SIGSTOP)
                samples[mode] += latencies
                segments[mode].append(f"{percentile(latencies, 0.99):.0f}")
                errors[mode] += failed
    floods = {}
    for mode, flooder in flooders.items():
        flooder.send_signal(signal.SIGCONT)
        out, _ = await flooder.communicate(b"stop\n")
        active = cycles * (SETTLE + segment)
        floods[mode] = ", ".join(f"{n / active:,.0f}/s {code}" for code, n in sorted(json.loads(out).items()))
    alone = sorted(samples.pop("alone"))
    p99_alone = percentile(alone, 0.99)
    results = [_result("noisy neighbour: B alone", alone, errors["alone"], seconds,
                       f"open loop at {B_RATE:.0f}/s; p99 of its {cycles} segments, interleaved with the floods': "
                       f"{' '.join(segments['alone'])} ms")]  # fmt: skip
    for mode, latencies in samples.items():
        latencies.sort()
        r = _result(f"noisy neighbour: B while A floods ({mode})", latencies, errors[mode], seconds,
                    f"ratio column: B p99 / B p99 alone; segments {' '.join(segments[mode])} ms; A: {floods[mode]}")  # fmt: skip
        r.ratio_to_echo = r.p99_ms / p99_alone
        results.append(r)
    return results


def retry_delay(exc: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay (seconds) in a status's details, if the server sent one."""
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToNanoseconds() / 1e9
    return None


async def _flood(mode: str, address: str, key: str, concurrency: int) -> Counter:
    """Floods until a line arrives on stdin (the bench pauses it with SIGSTOP between segments)."""
    counts: Counter = Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    async with grpc.aio.insecure_channel(address) as channel:
        meter = meter_pb2_grpc.MeterStub(channel)

        async def worker(n: int) -> None:
            i = n
            while not stop.is_set():
                i += 1
                auth = (("authorization", f"Bearer {key or _unknown_key()}"),)
                try:
                    if i % 2:
                        await meter.RecordCall(_record(), metadata=auth)
                    else:
                        await meter.CheckQuota(_check(), metadata=auth)
                    counts["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    counts[exc.code().name] += 1
                    delay = retry_delay(exc) if mode == "tenant-retryinfo" else None
                    if delay:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), delay)

        print("flooding", flush=True)
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return counts


def _unknown_key() -> str:
    from meterd.domain.keys import new_key

    return new_key()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", choices=FLOODS, required=True)
    parser.add_argument("address")
    parser.add_argument("key")
    parser.add_argument("concurrency", type=int)
    args = parser.parse_args()
    counts = asyncio.run(_flood(args.flood, args.address, args.key, args.concurrency))
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
