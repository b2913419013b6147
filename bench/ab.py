"""The record path of this checkout against another's, in one run (issue 16: what the rollups cost).

    python -m bench.ab --against /path/to/other/checkout [--seconds 5] [--rounds 4]

Starts one PostgreSQL (migrated by this checkout) and two Meter processes on it: this checkout's and
the other's (`--against`, e.g. `git worktree add /tmp/main main`; its server and client packages go
first on PYTHONPATH, with this virtualenv's dependencies). RecordCall (10k subjects) and RecordCalls of
100 are driven against each in turn, A B then B A, so a noisy neighbour hits both alike. Each row
reports server and PostgreSQL CPU seconds per 1,000 calls, summed over the rounds; PostgreSQL's CPU
is counted while only that server is driven. The other checkout must accept this one's schema
(Meter skips migrations it does not know)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from bench.cpu import postgres_cpu, process_cpu
from bench.measure import Result, closed_loop
from bench.run import LIMITS, SUBJECTS, _wait_for_port, start_stack
from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc


def start_other(url: str, checkout: Path, workdir: Path) -> tuple[subprocess.Popen, int]:
    path = os.pathsep.join(str(checkout / p) for p in ("server", "client"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    args = [sys.executable, "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
            "--log-level", "INFO", "--workers", "1"]  # fmt: skip
    log = workdir / "meter-other.log"
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=checkout)
    try:
        return proc, _wait_for_port(proc, args, log)
    except BaseException:
        proc.terminate()
        proc.wait(timeout=30)
        raise


def scenarios(meters, auth, rng: random.Random):
    def request() -> meter_pb2.RecordCallRequest:
        return meter_pb2.RecordCallRequest(
            call_id=uuid.uuid4().hex, subject=f"user:{rng.randrange(SUBJECTS)}", provider="openai", model="gpt-4.1",
            operation="chat", usage=common_pb2.Usage(input_tokens=700, output_tokens=300, cached_read_tokens=100),
            latency=duration_pb2.Duration(nanos=rng.randrange(10**8, 9 * 10**8)),
        )  # fmt: skip

    async def one(i: int) -> int:
        reply = await meters[i % len(meters)].RecordCall(request(), metadata=auth)
        assert not reply.duplicate
        return 1

    async def hundred(i: int) -> int:
        reply = await meters[i % len(meters)].RecordCalls(
            meter_pb2.RecordCallsRequest(calls=[request() for _ in range(100)]), metadata=auth
        )
        assert reply.recorded == 100, reply.failed
        return 100

    return [("RecordCall, 3 limits, 10k subjects", one, 64), ("RecordCalls, 100 per request (calls/s)", hundred, 8)]


async def compare(args: argparse.Namespace, stack, other_pid: int, other_port: int) -> list[Result]:
    auth = (("authorization", f"Bearer {stack.key}"),)
    targets = {"this": (stack.meter_pid, stack.meter_port), "against": (other_pid, other_port)}
    channels = {name: [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]
                for name, (_, port) in targets.items()}  # fmt: skip
    admin = admin_pb2_grpc.MeterAdminStub(channels["this"][0])
    for lim in LIMITS:
        await admin.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=auth)
    rng = random.Random(1)
    plans = {name: scenarios([meter_pb2_grpc.MeterStub(c) for c in chans], auth, rng)
             for name, chans in channels.items()}  # fmt: skip
    totals: dict[tuple[str, str], list[float]] = {}  # (scenario, target) -> [calls, seconds, server s, db s]
    for round_no in range(args.rounds):
        order = ["this", "against"] if round_no % 2 == 0 else ["against", "this"]
        for i in range(len(plans["this"])):
            for name in order:
                scenario, call, concurrency = plans[name][i]
                pid = targets[name][0]
                await closed_loop(scenario, call, concurrency, args.warmup)
                before = process_cpu(pid), postgres_cpu(stack.pg.pgdata)
                r = await closed_loop(scenario, call, concurrency, args.seconds)
                spent = process_cpu(pid) - before[0], postgres_cpu(stack.pg.pgdata) - before[1]
                t = totals.setdefault((scenario, name), [0, 0.0, 0.0, 0.0])
                t[0] += r.calls
                t[1] += r.seconds
                t[2] += spent[0]
                t[3] += spent[1]
                print(f"  round {round_no + 1}, {name}, {scenario}: {r.rate:,.0f}/s", file=sys.stderr, flush=True)
    for chans in channels.values():
        for c in chans:
            await c.close()
    results = []
    for (scenario, name), (calls, seconds, server, db) in totals.items():
        r = Result(f"{scenario} [{name}]", 0, int(calls), seconds, 0.0, 0.0, 0)
        r.server_cpu_s_per_k = server * 1000 / calls if calls else None
        r.db_cpu_s_per_k = db * 1000 / calls if calls else None
        results.append(r)
    for scenario in dict.fromkeys(s for s, _ in totals):
        a, b = (next(r for r in results if r.scenario == f"{scenario} [{n}]") for n in ("this", "against"))
        if a.server_cpu_s_per_k and b.server_cpu_s_per_k and a.db_cpu_s_per_k and b.db_cpu_s_per_k:
            a.note = (f"x against: server {a.server_cpu_s_per_k / b.server_cpu_s_per_k:.2f}, "
                      f"PostgreSQL {a.db_cpu_s_per_k / b.db_cpu_s_per_k:.2f}")  # fmt: skip
    return sorted(results, key=lambda r: r.scenario)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, required=True, help="the other checkout (a directory)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario and round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating which server goes first")
    args = parser.parse_args()
    stack = start_stack(argparse.Namespace(pool_max=10, profile=False))
    try:
        other, port = start_other(stack.url, args.against.resolve(), stack.workdir)
        stack.procs.append(other)
        results = asyncio.run(compare(args, stack, other.pid, port))
    finally:
        stack.stop()
    print(f"\n{'scenario':<52} {'calls/s':>8} {'srv s/1k':>8} {'db s/1k':>8}")
    for r in results:
        print(
            f"{r.scenario:<52} {r.rate:>8,.0f} {r.server_cpu_s_per_k or 0:>8.3f} {r.db_cpu_s_per_k or 0:>8.3f}  {r.note}"
        )
    print("srv s/1k, db s/1k: CPU seconds per 1,000 calls of that server and of PostgreSQL, summed over the rounds")


if __name__ == "__main__":
    main()
