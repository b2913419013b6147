"""Noisy neighbour: tenant B's steady traffic alone, then while tenant A floods from another process.

B sends RecordCall and CheckQuota RESERVE alternately at a fixed rate (open loop, so a slow answer
cannot hide the wait of the next). A is a separate process: `--flood tenant` sends the same RPCs
back to back at high concurrency with its own key and never backs off (RESOURCE_EXHAUSTED is
counted and retried at once, as a careless client would); `--flood unknown-keys` sends well-formed
keys the server has never seen. The figure that matters is B's p99 under a flood / B's p99 alone.

Run by bench/run.py (`python -m bench.run --match noisy`); this module is also the flooder's entry
point: `python -m bench.noisy --flood tenant ADDRESS KEY SECONDS CONCURRENCY`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter

import grpc

from bench.measure import Result, open_loop
from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc

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


async def noisy_neighbour(url: str, port: int, seconds: float) -> list[Result]:
    address = f"127.0.0.1:{port}"
    key_a, key_b = _key_process(url, "noisy-a"), _key_process(url, "noisy-b")
    auth_b = (("authorization", f"Bearer {key_b}"),)
    results = []
    async with grpc.aio.insecure_channel(address) as channel:
        meter = meter_pb2_grpc.MeterStub(channel)

        async def b(i: int) -> int:
            if i % 2:
                await meter.RecordCall(_record(), metadata=auth_b)
            else:
                await meter.CheckQuota(_check(), metadata=auth_b)
            return 1

        await open_loop("warm-up", b, B_RATE, 1.0)
        alone = await open_loop("noisy neighbour: B alone", b, B_RATE, seconds)
        results.append(alone)
        for mode, key in (("tenant", key_a), ("unknown-keys", "")):
            flooder = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.noisy", "--flood", mode, address, key, str(seconds + 2), "256",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert (await flooder.stdout.readline()).strip() == b"flooding"
            await asyncio.sleep(1.0)  # let the flood reach its steady state before measuring
            during = await open_loop(f"noisy neighbour: B while A floods ({mode})", b, B_RATE, seconds)
            counts = json.loads(await flooder.stdout.read())
            await flooder.wait()
            during.ratio_to_echo = during.p99_ms / alone.p99_ms
            flood = ", ".join(f"{n / (seconds + 2):,.0f}/s {code}" for code, n in sorted(counts.items()))
            during.note = f"ratio column: B p99 / B p99 alone; A: {flood}"
            results.append(during)
    return results


async def _flood(mode: str, address: str, key: str, seconds: float, concurrency: int) -> Counter:
    counts: Counter = Counter()
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        meter = meter_pb2_grpc.MeterStub(channel)

        async def worker(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
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

        print("flooding", flush=True)
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return counts


def _unknown_key() -> str:
    from meterd.domain.keys import new_key

    return new_key()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", choices=["tenant", "unknown-keys"], required=True)
    parser.add_argument("address")
    parser.add_argument("key")
    parser.add_argument("seconds", type=float)
    parser.add_argument("concurrency", type=int)
    args = parser.parse_args()
    counts = asyncio.run(_flood(args.flood, args.address, args.key, args.seconds, args.concurrency))
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
