"""`make bench`: the transport ceiling and Meter's hot paths, measured in one run on one machine.

Starts a fresh PostgreSQL (durable settings: fsync and synchronous commit on), a bare grpc.aio echo
server and `meter serve`, then drives each with the same client, concurrency and message size.
Prints a table and writes bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
from google.protobuf import duration_pb2

from bench.alerts import alert_latency, start_second_meter
from bench.baselines import database_batched_upserts, prefill, reserve_at_rate, same_work, usage_queries
from bench.call_search import search_and_recommend
from bench.cpu import postgres_cpu, process_cpu
from bench.measure import Result, closed_loop, disk_flush, open_loop, print_table
from bench.noisy import noisy_neighbour
from bench.tls import start_tls_meters, tls_comparison
from bench.workers import comparison_scenarios, start_workers_meter, workers_comparison
from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meterd.store.embedded import EmbeddedPostgres

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SUBJECTS = 10_000
FLOOR = "CheckQuota floor: decode, canned answer, no work"
NO_LIMITS = "CheckQuota CHECK_ONLY, no limit (no database)"
# The plain-psycopg work (bench/baselines.py same_work) each scenario is held against: kind, hot subject.
SAME_WORK = {
    "CheckQuota CHECK_ONLY, 3 limits": ("check_only", False),
    "CheckQuota RESERVE, 3 limits, 10k subjects": ("reserve", False),
    "CheckQuota RESERVE, 3 limits, 1 hot subject": ("reserve", True),
    "reserve + settle pairs (2 RPCs each)": ("pair", False),
    "RecordCall, 3 limits, 10k subjects": ("record", False),
    "RecordCall, 3 limits, 1 hot subject": ("record", True),
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_process(args: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    out = log.open("w")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        return proc, _wait_for_port(proc, args, log)
    except BaseException:
        proc.terminate()  # never leave a server behind (a supervisor outlives its launcher)
        proc.wait(timeout=30)
        raise


def _wait_for_port(proc: subprocess.Popen, args: list[str], log: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text()
        for line in text.splitlines():
            if line.strip().isdigit():
                return int(line.strip())
            port = re.search(r"listening on \S+ \(port (\d+)\)( with \d+ workers)?", line)
            # A single process is ready at its first SERVING; `--workers N` when all N are.
            if port and ("workers SERVING" in text if port.group(2) else "SERVING" in text):
                return int(port.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited:\n{text}")
        time.sleep(0.1)
    raise RuntimeError(f"{args} did not start:\n{log.read_text()}")


def check_request(subject: str, mode=meter_pb2.CHECK_MODE_RESERVE) -> meter_pb2.CheckQuotaRequest:
    # An hour's TTL: with the default 60 s, the reservations of one scenario expire during a later one,
    # whose figures would then carry the sweeper's releases (a 2-worker RESERVE row read 1.5 ms of PostgreSQL
    # CPU per request with them, 0.46 ms without).
    return meter_pb2.CheckQuotaRequest(
        subject=subject, provider="openai", model="gpt-4.1", operation="chat", mode=mode,
        estimate=meter_pb2.Estimate(input_tokens=800, max_output_tokens=400),
        reservation_ttl=duration_pb2.Duration(seconds=3600),
    )  # fmt: skip


LIMITS = [
    admin_pb2.Limit(id="tenant-daily-tokens", metric=common_pb2.METRIC_TOTAL_TOKENS, max=10**15,
                    window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY)),
    admin_pb2.Limit(id="per-user-minute", metric=common_pb2.METRIC_REQUESTS, max=10**12,
                    partition=common_pb2.PARTITION_PER_SUBJECT, window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_MINUTE)),
    admin_pb2.Limit(id="gpt41-hourly-cost", metric=common_pb2.METRIC_COST_NANOS, max=10**17,
                    selector=common_pb2.Selector(model="gpt-4.1"), window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_HOUR)),
]  # fmt: skip


@dataclasses.dataclass
class Stack:
    """PostgreSQL, the echo server and Meter, started before the event loop (they are processes)."""

    pg: EmbeddedPostgres
    procs: list[subprocess.Popen]
    echo_port: int
    meter_port: int
    meter_pid: int
    echo_pid: int
    floor_port: int
    floor_pid: int
    key: str
    limitless_key: str
    url: str
    workdir: Path
    temporary: bool = True  # workdir made for this run (deleted at stop)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(timeout=30)
        self.pg.stop()
        # A run leaves gigabytes (the prefill, the usage data set): 99 of them once filled /tmp to 93%.
        # A directory the caller chose (bench.console --data-dir) is the caller's to keep.
        if self.temporary:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_stack(args: argparse.Namespace, workdir: Path | None = None) -> Stack:
    """workdir: where PostgreSQL keeps its data (a new temporary directory when None; an existing one
    is started again with its data, e.g. bench.console --data-dir)."""
    temporary = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="meter-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(workdir / "pg", settings={"max_connections": "200"})
    url = pg.start()
    procs: list[subprocess.Popen] = []
    try:
        echo_proc, echo_port = start_process([sys.executable, str(HERE / "echo_server.py")], workdir / "echo.log")
        procs.append(echo_proc)
        floor_proc, floor_port = start_process([sys.executable, str(HERE / "floor_server.py")], workdir / "floor.log")
        procs.append(floor_proc)
        profile = ["-m", "cProfile", "-o", str(RESULTS / f"meter-{time.strftime('%Y%m%dT%H%M%S')}.prof")]
        RESULTS.mkdir(exist_ok=True)
        meter_args = [sys.executable, *(profile if args.profile else []), "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
                      "--pool-max", str(args.pool_max), "--log-level", "INFO", "--workers", "1"]  # fmt: skip
        meter_proc, meter_port = start_process(meter_args, workdir / "meter.log")
        procs.append(meter_proc)
        key, limitless_key = (subprocess.run(
            [sys.executable, "-m", "meterd", "keys", "create", "--tenant", tenant, "--role", "admin",
             "--database-url", url], check=True, capture_output=True, text=True,
        ).stdout.strip() for tenant in ("bench", "bench-no-limits"))  # fmt: skip
    except BaseException:
        Stack(pg, procs, 0, 0, 0, 0, 0, 0, "", "", url, workdir, temporary).stop()
        raise
    return Stack(pg, procs, echo_port, meter_port, meter_proc.pid, echo_proc.pid, floor_port, floor_proc.pid, key,
                 limitless_key, url, workdir, temporary)  # fmt: skip


async def run(args: argparse.Namespace, stack: Stack) -> dict:
    results: list[Result] = []
    echo_port, meter_port, key = stack.echo_port, stack.meter_port, stack.key
    auth = (("authorization", f"Bearer {key}"),)

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{meter_port}") for _ in range(args.channels)]
    echo_channels = [grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") for _ in range(args.channels)]
    floor_channels = [grpc.aio.insecure_channel(f"127.0.0.1:{stack.floor_port}") for _ in range(args.channels)]
    floors = [meter_pb2_grpc.MeterStub(c) for c in floor_channels]
    meters = [meter_pb2_grpc.MeterStub(c) for c in channels]
    admin = admin_pb2_grpc.MeterAdminStub(channels[0])
    if not args.alert_triggers:  # A/B: what the alert triggers cost the hot paths
        async with await psycopg.AsyncConnection.connect(stack.url, autocommit=True) as conn:
            for table, trigger in (("counters", "counters_alerts_insert"), ("counters", "counters_alerts_update"),
                                   ("calls", "calls_alerts")):  # fmt: skip
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    for lim in LIMITS:
        await admin.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=auth)
    if args.prefill_counters or args.prefill_calls:
        print("  " + await prefill(stack.url, args.prefill_counters, args.prefill_calls), file=sys.stderr, flush=True)

    payload = check_request("user:1").SerializeToString()
    echoes = [c.unary_unary("/bench.Echo/Echo") for c in echo_channels]
    rng = random.Random(1)

    async def echo(i: int) -> int:
        await echoes[i % len(echoes)](payload)
        return 1

    async def floor(i: int) -> int:
        reply = await floors[i % len(floors)].CheckQuota(check_request(spread(i)), metadata=auth)
        assert reply.allowed and len(reply.limits) == 3
        return 1

    def checker(mode, subject_of: Callable[[int], str]):
        async def call(i: int) -> int:
            reply = await meters[i % len(meters)].CheckQuota(check_request(subject_of(i), mode), metadata=auth)
            assert reply.allowed and len(reply.limits) == 3
            return 1

        return call

    # A tenant without limits: CHECK_ONLY is answered without the database, so this row is Meter's own
    # per-RPC work (interceptors, validation, pricing, the answer) between the floor and a real check.
    limitless = (("authorization", f"Bearer {stack.limitless_key}"),)

    async def no_limits(i: int) -> int:
        request = check_request(spread(i), meter_pb2.CHECK_MODE_CHECK_ONLY)
        reply = await meters[i % len(meters)].CheckQuota(request, metadata=limitless)
        assert reply.allowed and reply.no_limits_matched
        return 1

    spread = lambda i: f"user:{rng.randrange(SUBJECTS)}"  # noqa: E731
    hot = lambda i: "user:hot"  # noqa: E731

    async def reserve_settle(i: int) -> int:
        meter = meters[i % len(meters)]
        subject = spread(i)  # the record settles the reservation of its own call (same dimensions)
        reply = await meter.CheckQuota(check_request(subject), metadata=auth)
        settled = await meter.RecordCall(
            meter_pb2.RecordCallRequest(
                call_id=uuid.uuid4().hex, reservation_id=reply.reservation_id, subject=subject,
                provider="openai", model="gpt-4.1", operation="chat",
                usage=common_pb2.Usage(input_tokens=700, output_tokens=300),
            ),
            metadata=auth,
        )  # fmt: skip
        assert settled.reservation_settled
        return 1

    def record_request(subject: str) -> meter_pb2.RecordCallRequest:
        return meter_pb2.RecordCallRequest(
            call_id=uuid.uuid4().hex, subject=subject, provider="openai", model="gpt-4.1", operation="chat",
            usage=common_pb2.Usage(input_tokens=700, output_tokens=300, cached_read_tokens=100),
            latency=duration_pb2.Duration(nanos=rng.randrange(10**8, 9 * 10**8)),
        )  # fmt: skip

    def recorder(subject_of: Callable[[int], str]):
        async def call(i: int) -> int:
            reply = await meters[i % len(meters)].RecordCall(record_request(subject_of(i)), metadata=auth)
            assert not reply.duplicate and len(reply.limits) == 3
            return 1

        return call

    def batch_recorder(size: int):
        async def call(i: int) -> int:
            request = meter_pb2.RecordCallsRequest(calls=[record_request(spread(i)) for _ in range(size)])
            reply = await meters[i % len(meters)].RecordCalls(request, metadata=auth)
            assert reply.recorded == size, next((r.error_message for r in reply.results if r.error_code), reply)
            return size

        return call

    quota = [
        (NO_LIMITS, no_limits, args.concurrency),
        ("CheckQuota CHECK_ONLY, 3 limits", checker(meter_pb2.CHECK_MODE_CHECK_ONLY, spread), args.concurrency),
        ("CheckQuota RESERVE, 3 limits, 10k subjects", checker(meter_pb2.CHECK_MODE_RESERVE, spread), args.concurrency),
        ("CheckQuota RESERVE, 3 limits, 1 hot subject", checker(meter_pb2.CHECK_MODE_RESERVE, hot), args.concurrency),
        ("reserve + settle pairs (2 RPCs each)", reserve_settle, args.concurrency),
    ]
    metering = [
        ("RecordCall, 3 limits, 10k subjects", recorder(spread), args.concurrency),
        ("RecordCall, 3 limits, 1 hot subject", recorder(hot), args.concurrency),
        ("RecordCalls, 100 per request (calls/s)", batch_recorder(100), 8),
        ("RecordCalls, 1000 per request (calls/s)", batch_recorder(1000), 2),
    ]
    scenarios = [("echo (transport ceiling)", echo, args.concurrency)]
    if "quota" in args.only:  # what decoding and answering the real messages costs, with no work between
        scenarios.append((FLOOR, floor, args.concurrency))
    scenarios += quota if "quota" in args.only else []
    scenarios += metering if "metering" in args.only else []
    if args.match:  # e.g. profiling one path: echo stays, as the yardstick
        scenarios = scenarios[:1] + [
            s for s in scenarios[1:] if s[0] in (FLOOR, NO_LIMITS) or args.match.lower() in s[0].lower()
        ]
    rss_before = rss_mb(stack.meter_pid)
    rss_rounds = []
    # Every round runs every scenario again; only the last round's figures are reported. The RSS
    # after each round shows whether memory settles (flat) or keeps growing (a leak).
    for round_no in range(1, args.rounds + 1):
        round_results = []
        for name, call, concurrency in scenarios:
            await closed_loop(name, call, concurrency, args.warmup)
            server_pid = {"echo (transport ceiling)": stack.echo_pid, FLOOR: stack.floor_pid}.get(name, stack.meter_pid)
            cpu_before = process_cpu(server_pid), postgres_cpu(stack.pg.pgdata)
            result = await closed_loop(name, call, concurrency, args.seconds)
            if result.calls:
                result.server_cpu_s_per_k = (process_cpu(server_pid) - cpu_before[0]) * 1000 / result.calls
                result.db_cpu_s_per_k = (postgres_cpu(stack.pg.pgdata) - cpu_before[1]) * 1000 / result.calls
            round_results.append(result)
            print(f"  round {round_no}, {name}: {result.rate:,.0f}/s", file=sys.stderr, flush=True)
        rss_rounds.append(round(rss_mb(stack.meter_pid), 1))
    results += round_results
    rss_after = rss_rounds[-1]

    half: list[Result] = []
    if any(r.scenario.startswith("CheckQuota RESERVE, 3 limits, 10k") for r in results):
        # The figure: Meter at half of its peak, and echo at that same offered load (a rate both
        # serve without queueing, so the p99 difference is Meter's work, not a queue). Right after the
        # peak, before the baselines below fill the database with their own rows (and its autovacuum).
        name = "CheckQuota RESERVE, 3 limits, 10k subjects"
        reserve_peak = next(r.rate for r in results if r.scenario == name)
        reserve = next(call for scenario, call, _ in quota if scenario == name)
        for label, call in (("echo at Meter's half load", echo), ("RESERVE 10k subjects at half load", reserve)):
            half.append(await open_loop(label, call, reserve_peak / 2, args.seconds))
        half.append(await reserve_at_rate(stack.url, reserve_peak / 2, args.seconds))
        half.append(disk_flush(str(stack.pg.pgdata)))

    echo_rate = results[0].rate
    for r in results:
        if r.scenario.startswith("RecordCalls,"):
            continue  # calls per second, not RPCs: compared with the database baseline below
        rpcs_per_item = 2 if r.scenario.startswith("reserve + settle") else 1
        r.ratio_to_echo = r.rate * rpcs_per_item / echo_rate
        if r.server_cpu_s_per_k and results[0].server_cpu_s_per_k:
            r.server_cpu_to_echo = r.server_cpu_s_per_k / rpcs_per_item / results[0].server_cpu_s_per_k
    if half:  # latency rows, added after the throughput ratios above: their ratios are of p99s
        echo_half, meter_half, db_half = half[:3]
        meter_half.ratio_to_echo = meter_half.p99_ms / echo_half.p99_ms
        # What the transport and the database alone leave a RESERVE's p99 at this load, and Meter's share of it.
        meter_half.limit_rate = echo_half.p99_ms + db_half.p99_ms
        meter_half.ratio_to_limit = meter_half.p99_ms / meter_half.limit_rate
        meter_half.note += " (x echo: p99 / echo p99; limit: echo p99 + database p99, ms)"
        results += half

    for r in results:  # the database doing the same rows, and the ceiling of doing both on these CPUs
        if r.scenario in SAME_WORK:
            base = await same_work(
                stack.url, *SAME_WORK[r.scenario], args.seconds, lambda: postgres_cpu(stack.pg.pgdata)
            )
            results.append(base)
            rpcs = 2 if r.scenario.startswith("reserve + settle") else 1
            r.limit_rate = 1 / (rpcs / echo_rate + 1 / base.rate)
            r.ratio_to_limit = r.rate / r.limit_rate
            r.baseline_db_cpu_s_per_k = base.db_cpu_s_per_k
            print(f"  {base.scenario}: {base.rate:,.0f}/s", file=sys.stderr, flush=True)

    if "metering" in args.only and any(r.scenario.startswith("RecordCalls,") for r in results):
        baseline = await database_batched_upserts(stack.url, args.seconds)
        results.append(baseline)
        for r in results:
            if r.scenario.startswith("RecordCalls,"):
                r.ratio_to_echo = r.rate / baseline.rate
                r.note = "ratio column: / database baseline"

    def group(name: str, title: str) -> bool:
        """A scenario group runs when chosen with --only and, with --match, when its title matches."""
        return name in args.only and (not args.match or args.match.lower() in title)

    if group("workers", "workers"):
        second, second_port = start_workers_meter(stack.url, 2, stack.workdir / "meter-w2.log", start_process)
        stack.procs.append(second)

        results += await workers_comparison(
            [(1, meter_port, stack.meter_pid), (2, second_port, second.pid)],
            comparison_scenarios(lambda i, mode: check_request(spread(i), mode), lambda i: record_request(spread(i)), auth),
            stack.pg.pgdata, args.concurrency, args.seconds, args.warmup,
        )  # fmt: skip

    if group("usage", "getusage usage"):
        results += await usage_queries(stack.url, meters[0], auth, args.usage_calls)
        results += await search_and_recommend(stack.url, meters[0], auth, args.usage_calls)

    if group("noisy", "noisy neighbour"):
        results += await noisy_neighbour(stack.url, meter_port, args.seconds)

    if group("alerts", "alert latency"):
        second, second_port = start_second_meter(stack.url, stack.workdir / "meter2.log", start_process)
        stack.procs.append(second)
        results += await alert_latency(stack.url, meter_port, second_port, args.seconds, 16)

    if group("tls", "tls transport"):
        certs, procs, tls_port, mtls_port = start_tls_meters(stack.url, stack.workdir, start_process)
        stack.procs += procs

        def check_only(stubs, auth):
            async def call(i: int) -> int:
                reply = await stubs[i % len(stubs)].CheckQuota(
                    check_request(spread(i), meter_pb2.CHECK_MODE_CHECK_ONLY), metadata=auth
                )
                assert reply.allowed
                return 1

            return call

        results += await tls_comparison(meter_port, tls_port, mtls_port, certs, check_only, auth, args)

    if group("tracing", "tracing opentelemetry"):
        from bench.tracing import start_collector, start_traced_meters, tracing_comparison

        collector_server, collector, collector_port = await start_collector()
        traced = start_traced_meters(stack.url, stack.workdir, start_process, collector_port)
        stack.procs += [proc for _, proc, _ in traced]

        def reserve(stubs, auth):
            async def call(i: int) -> int:
                reply = await stubs[i % len(stubs)].CheckQuota(check_request(spread(i)), metadata=auth)
                assert reply.allowed
                return 1

            return call

        results += await tracing_comparison(meter_port, stack.meter_pid, traced, collector, reserve, auth, args)
        await collector_server.stop(1)

    for c in channels + echo_channels + floor_channels:
        await c.close()
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": vars(args),
        "server_rss_mb": {"before": round(rss_before, 1), "after": round(rss_after, 1), "after_each_round": rss_rounds},
        "results": [dataclasses.asdict(r) | {"rate": r.rate} for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (closed loop)")
    parser.add_argument("--channels", type=int, default=4, help="client HTTP/2 connections")
    parser.add_argument("--pool-max", type=int, default=10, help="Meter's database pool size")
    parser.add_argument(
        "--only",
        nargs="+",
        default=["quota", "metering", "workers", "usage", "alerts", "tls", "noisy", "tracing"],
        choices=["quota", "metering", "workers", "usage", "alerts", "tls", "noisy", "tracing"],
        help="scenario groups to run (echo always runs)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run Meter under cProfile; the profile is written to bench/results/"
    )
    parser.add_argument("--match", default="", help="only the scenarios whose name contains this (and echo)")
    parser.add_argument("--rounds", type=int, default=2, help="run the scenarios this many times (RSS per round)")
    parser.add_argument(
        "--alert-triggers",
        choices=["on", "off"],
        default="on",
        help="off disables the alert triggers on counters and calls (to measure what they cost)",
    )
    parser.add_argument("--prefill-counters", type=int, default=500_000, help="counters rows of other tenants first")
    parser.add_argument("--prefill-calls", type=int, default=500_000, help="calls rows of other tenants first")
    parser.add_argument("--usage-calls", type=int, default=5_000_000, help="calls generated for the GetUsage scenario")
    args = parser.parse_args()
    args.alert_triggers = args.alert_triggers == "on"
    stack = start_stack(args)
    try:
        try:
            import uvloop

            report = uvloop.run(run(args, stack))
        except ImportError:
            report = asyncio.run(run(args, stack))
    finally:
        stack.stop()
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
