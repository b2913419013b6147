"""Console page times on a large data set: `python -m bench.console [--calls 5000000] [--analytics]`.

Starts PostgreSQL and `meter serve` (as `make bench` does), generates N calls over the last 29 days
with every rollup (bench/dataset.py), with --analytics times issue 16's scenarios on them, starts `meter console` as its own process,
signs in and loads every page several times, with the console's GetUsage cache off (every load reads
Meter). Prints the median and worst server time per page (the
console's Server-Timing header: the page's GetUsage/ListCalls reads plus rendering) and the wall time
seen by the HTTP client, against the 500 ms target; writes bench/results/console-<timestamp>.json."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import httpx

from bench import dataset
from bench.measure import Result
from bench.run import RESULTS, start_stack
from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2

PAGES = [
    "/?range=today",
    "/?range=7d",
    "/?range=30d",
    "/?range=month&stack=provider",
    "/limits",
    "/calls",
    "/calls?model=gpt-4o&outcome=error",
    "/report?period=day",
    "/report?period=week",
    "/admin/limits",
    "/admin/prices",
    "/admin/prices?history=1",
    "/admin/rules",
    "/admin/keys",
    "/alerts",
    "/export.csv?range=7d&table=models",
    # The deferred tables, fetched by the overview and report pages after they load:
    "/fragments/table?range=today&table=users",
    "/fragments/table?range=7d&table=users",
    "/fragments/table?range=30d&table=users",
    "/fragments/table?range=today&table=labels&label_key=conversation",  # declared: label rollups
]
TARGET_MS = 500


async def generate(url: str, n: int) -> None:
    made = await dataset.generate(url, "bench", n, now=dt.datetime.now(dt.UTC))  # any-date: bench data
    print(f"generated {n:,} calls with every rollup in {made.seconds:.0f} s: {made.steps}", file=sys.stderr, flush=True)


async def analytics(url: str, port: int, key: str, n: int) -> list[Result]:
    """Issue 16's analytics scenarios (bench/baselines.py usage_queries, bench/call_search.py) on the
    same data, in the same run, before the pages."""
    from bench.baselines import usage_queries
    from bench.call_search import search_and_recommend
    from meter.v1 import meter_pb2_grpc

    auth = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        meter = meter_pb2_grpc.MeterStub(channel)
        return [
            *await usage_queries(url, meter, auth, n, generate=False),
            *await search_and_recommend(url, meter, auth, n),
        ]


async def set_limits(port: int, key: str) -> None:
    auth = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        admin = admin_pb2_grpc.MeterAdminStub(channel)
        for i, (metric, window, partition) in enumerate(
            [
                (common_pb2.METRIC_COST_NANOS, common_pb2.WINDOW_KIND_DAY, common_pb2.PARTITION_SHARED),
                (common_pb2.METRIC_TOTAL_TOKENS, common_pb2.WINDOW_KIND_MONTH, common_pb2.PARTITION_PER_SUBJECT),
                (common_pb2.METRIC_REQUESTS, common_pb2.WINDOW_KIND_HOUR, common_pb2.PARTITION_SHARED),
            ]
        ):
            limit = admin_pb2.Limit(
                id=f"bench-{i}", metric=metric, window=common_pb2.Window(kind=window), max=10**12, partition=partition
            )
            await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit), metadata=auth)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(base: str, key: str, rounds: int) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        form = await http.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        signin_cookie = form.headers["set-cookie"].split(";")[0]
        reply = await http.post("/signin", data={"csrf": csrf, "api_key": key}, headers={"cookie": signin_cookie})
        http.headers["cookie"] = reply.headers["set-cookie"].split(";")[0]
        out = {}
        listing = (await http.get("/calls")).text  # one call's detail: the first of the list
        detail = re.search(r'href="(/calls/detail\?[^"]+)"', listing).group(1).replace("&amp;", "&")
        for path in [*PAGES, detail]:
            server, wall = [], []
            for _ in range(rounds + 1):  # the first load warms caches and is not counted
                t = time.perf_counter()
                response = await http.get(path)
                wall.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                server.append(float(response.headers["server-timing"].split("dur=")[1]))
            server, wall = server[1:], wall[1:]
            out[path] = {
                "server_ms_median": statistics.median(server),
                "server_ms_max": max(server),
                "wall_ms_median": statistics.median(wall),
            }
            print(f"{path:<42} server {statistics.median(server):7.1f} ms (max {max(server):7.1f})  wall {statistics.median(wall):7.1f} ms"
                  f"  {'ok' if max(server) <= TARGET_MS else 'OVER TARGET'}", flush=True)  # fmt: skip
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--analytics",
        action="store_true",
        help="also time issue 16's GetUsage, ListCalls and GetRecommendations scenarios first",
    )
    parser.add_argument(
        "--meter", help="measure against this running Meter instead (with --api-key; no data generated)"
    )
    parser.add_argument("--api-key", help="an admin key of --meter")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep PostgreSQL's data here; a later run with the same directory and --calls reuses the data set "
        "instead of generating it again (the calls end an hour before the first run: reuse it the same day)",
    )
    args = parser.parse_args()
    if args.meter:
        stack = SimpleNamespace(meter_port=int(args.meter.rsplit(":", 1)[1]), key=args.api_key, stop=lambda: None,
                                workdir=Path(tempfile.mkdtemp(prefix="meter-console-bench-")))  # fmt: skip
    else:
        stack = start_stack(SimpleNamespace(profile=False, pool_max=10), args.data_dir)
    generated = stack.workdir / f"generated-{args.calls}"  # written once the data set is complete
    console = None
    scenarios: list[Result] = []
    load_before = os.getloadavg()
    try:
        if not args.meter and not generated.exists():
            asyncio.run(generate(stack.url, args.calls))
            asyncio.run(set_limits(stack.meter_port, stack.key))
            generated.write_text(dt.datetime.now(dt.UTC).isoformat())  # any-date: when the data set was made
        if args.analytics and not args.meter:
            scenarios = asyncio.run(analytics(stack.url, stack.meter_port, stack.key, args.calls))
            for r in scenarios:
                print(
                    f"{r.scenario:<72} p50 {r.p50_ms:8.1f} ms  p99 {r.p99_ms:8.1f} ms  n={r.calls}  {r.note}",
                    flush=True,
                )
        port = free_port()
        log = (stack.workdir / "console.log").open("w")
        console = subprocess.Popen(
            [sys.executable, "-m", "meterd", "console", "--listen", f"127.0.0.1:{port}", "--meter", f"127.0.0.1:{stack.meter_port}", "--log-level", "warning", "--cache-ttl", "0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/signin", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or console.poll() is not None:
                    raise RuntimeError((stack.workdir / "console.log").read_text()) from None
                time.sleep(0.2)
        pages = asyncio.run(measure(f"http://127.0.0.1:{port}", stack.key, args.rounds))
    finally:
        if console is not None:
            console.terminate()
            console.wait(10)
        stack.stop()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"console-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "calls": args.calls,
                "rounds": args.rounds,
                "target_ms": TARGET_MS,
                "pages": pages,
                "load_before": load_before,
                "load_after": os.getloadavg(),
                "analytics": [dataclasses.asdict(r) for r in scenarios],
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
