"""What OpenTelemetry tracing costs: CheckQuota RESERVE (a server span, a batch span, SQL spans)
against three Meter processes on one database, measured interleaved so a noisy neighbour hits them
alike: tracing off (no --otel-endpoint: OpenTelemetry is not even imported), tracing on with every
trace exported over OTLP/gRPC to a local collector (in this process, counting spans), and tracing on
with a sample ratio of 0 (the instrumentation runs, nothing is recorded or exported)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.cpu import process_cpu
from bench.measure import Result, closed_loop


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """The receiving end of OTLP/gRPC: counts the spans it is sent, keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0

    async def Export(self, request, context):
        self.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def start_collector() -> tuple[grpc.aio.Server, Collector, int]:
    server = grpc.aio.server()
    collector = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, collector, port


def start_traced_meters(
    url: str, workdir: Path, start_process, collector_port: int
) -> list[tuple[str, subprocess.Popen, int]]:
    base = [sys.executable, "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
            "--log-level", "INFO", "--otel-endpoint", f"http://127.0.0.1:{collector_port}"]  # fmt: skip
    out = []
    try:
        for name, ratio in (("tracing on, every trace exported", "1"), ("tracing on, sample ratio 0", "0")):
            proc, port = start_process([*base, "--otel-sample-ratio", ratio], workdir / f"meter-otel-{ratio}.log")
            out.append((name, proc, port))
    except BaseException:
        for _, proc, _ in out:
            proc.terminate()
        raise
    return out


async def tracing_comparison(
    meter_port: int, meter_pid: int, traced, collector: Collector, make_call, auth, args
) -> list[Result]:
    """traced: [(name, process, port)]; make_call(stubs, auth) -> an async call(i) for closed_loop."""
    from meter.v1 import meter_pb2_grpc

    targets = [("tracing off", meter_pid, meter_port)] + [(name, proc.pid, port) for name, proc, port in traced]
    channels = {name: [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(args.channels)]
                for name, _, port in targets}  # fmt: skip
    calls = {name: make_call([meter_pb2_grpc.MeterStub(c) for c in chans], auth) for name, chans in channels.items()}
    runs: dict[str, list[tuple[Result, float]]] = {name: [] for name, _, _ in targets}
    spans_before = collector.spans
    for _ in range(2):
        for name, pid, _ in targets:
            await closed_loop(name, calls[name], args.concurrency, args.warmup)
            cpu = process_cpu(pid)
            result = await closed_loop(name, calls[name], args.concurrency, args.seconds / 2)
            runs[name].append((result, process_cpu(pid) - cpu))
    results = []
    off_rate = off_cpu = None
    for name, _, _ in targets:
        rs = [r for r, _ in runs[name]]
        total = Result(f"CheckQuota RESERVE, {name}", args.concurrency, sum(r.calls for r in rs),
                       sum(r.seconds for r in rs), statistics.mean(r.p50_ms for r in rs),
                       statistics.mean(r.p99_ms for r in rs), sum(r.errors for r in rs))  # fmt: skip
        total.server_cpu_s_per_k = sum(c for _, c in runs[name]) * 1000 / total.calls if total.calls else None
        if off_rate is None:
            off_rate, off_cpu = total.rate, total.server_cpu_s_per_k
            total.note = "the yardstick of the tracing rows"
        else:
            total.ratio_to_echo = total.rate / off_rate
            cpu_ratio = (total.server_cpu_s_per_k or 0) / off_cpu if off_cpu else float("nan")
            total.note = f"ratio column: rate / tracing-off rate; server CPU per call x{cpu_ratio:.2f}"
        results.append(total)
    results[1].note += f"; {collector.spans - spans_before:,} spans reached the collector"
    for chans in channels.values():
        for c in chans:
            await c.close()
    return results
