"""Overhead of the LiteLLM hook (meter.integrations.litellm) per call, measured in one run:
`python -m bench.litellm_hook [--calls 300]`.

Starts an embedded PostgreSQL and `meter serve` (a separate process, as in production), a local fake
OpenAI-compatible server, then times `litellm.acompletion` one call at a time, alternating rounds
with and without the callback so machine noise hits both alike. Reports per-call medians and the
difference (the reserve round trip before the call; the record runs after LiteLLM has returned, so
it is timed separately as the callback's own work), and the estimate's token counting alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the fake OpenAI server of the tests
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.run import start_process  # noqa: E402
from meterd.store.embedded import EmbeddedPostgres  # noqa: E402


def meter_key(url: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "meterd", "keys", "create", "--tenant", "bench", "--role", "check", "--role", "record",
         "--database-url", url], check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(w for w in out.split() if w.startswith("mk_"))


async def measure(port: int, key: str, calls: int) -> dict[str, float]:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    from meter.integrations.litellm import MeterCallback
    from meter_testing.fake_openai import fake_openai

    callback = MeterCallback(f"127.0.0.1:{port}", key)

    class NoOp(CustomLogger):  # LiteLLM's own cost of having a callback at all (logging payloads...)
        async def async_pre_call_deployment_hook(self, kwargs, call_type):
            return None

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            pass

    noop = NoOp()
    messages = [{"role": "user", "content": "Summarise the quarterly report in three bullet points, please."}]
    variants = {"plain": [], "noop": [noop], "meter": [callback]}
    timings: dict[str, list[float]] = {v: [] for v in variants}
    record_s: list[float] = []
    original = callback._record

    async def timed_record(*args, **kwargs):
        t0 = time.perf_counter()
        had = str(args[0].get("litellm_call_id")) in callback._in_flight
        await original(*args, **kwargs)
        if had:
            record_s.append(time.perf_counter() - t0)

    callback._record = timed_record  # type: ignore[method-assign]
    async with fake_openai() as fake:

        async def one(variant: str) -> None:
            litellm.callbacks = variants[variant]
            t0 = time.perf_counter()
            await litellm.acompletion(model="openai/gpt-4.1", api_base=fake.base_url, api_key="sk-fake",
                                      messages=messages, max_tokens=200, metadata={"meter_subject": "bench:user"})  # fmt: skip
            timings[variant].append(time.perf_counter() - t0)
            deadline = time.monotonic() + 10
            # The record runs after LiteLLM returns, in a task it schedules: nothing to await but the state.
            while callback._in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.001)

        order = list(variants)
        for _ in range(20):  # warm-up: connections, token encoder, code paths
            for v in order:
                await one(v)
        timings, record_s[:] = {v: [] for v in variants}, []
        for i in range(calls):
            for v in order[i % 3 :] + order[: i % 3]:  # rotate, so no variant always runs first
                await one(v)
    client = callback.client
    rtts = []
    for i in range(calls):  # the same reservation straight from the client: Meter's own share
        t0 = time.perf_counter()
        r = await client.reserve("bench:user", "openai", "gpt-4.1", operation="chat", estimate_tokens=20,
                                 max_output_tokens=200, reservation_id=f"direct-{i}-{time.time_ns()}")  # fmt: skip
        rtts.append(time.perf_counter() - t0)
        await client.release(r.reservation_id)
    t0 = time.perf_counter()
    for _ in range(calls):
        callback.estimate({"messages": messages, "max_tokens": 200}, "gpt-4.1")
    estimate_us = (time.perf_counter() - t0) / calls * 1e6
    await callback.client.close()
    med = {v: statistics.median(t) * 1e3 for v, t in timings.items()}
    return {
        "calls_each": calls,
        "plain_median_ms": med["plain"],
        "noop_callback_median_ms": med["noop"],
        "meter_callback_median_ms": med["meter"],
        "overhead_vs_noop_callback_ms": med["meter"] - med["noop"],
        "overhead_vs_plain_ms": med["meter"] - med["plain"],
        "direct_reserve_median_ms": statistics.median(rtts) * 1e3,
        "hook_own_work_ms": med["meter"] - med["noop"] - statistics.median(rtts) * 1e3,
        "records_timed": len(record_s),
        "record_after_return_median_ms": statistics.median(record_s) * 1e3,
        "estimate_token_count_us": estimate_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="meter-bench-litellm-"))
    pg = EmbeddedPostgres(workdir / "pg")
    url = pg.start()
    proc = None
    try:
        key = meter_key(url)
        proc, port = start_process(
            [sys.executable, "-m", "meterd", "serve", "--listen", "127.0.0.1:0", "--database-url", url],
            workdir / "meter.log",
        )
        result = asyncio.run(measure(port, key, args.calls))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        pg.stop()
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value:,.3f}" if isinstance(value, float) else f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
