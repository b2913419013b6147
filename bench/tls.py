"""What TLS costs: the time to the first RPC on a new channel (TCP + TLS handshake + HTTP/2 setup +
one health check) over plaintext, TLS and mutual TLS, and CheckQuota throughput over TLS vs
plaintext. Separate Meter processes on the same database serve TLS and mutual TLS with certificates
made for the run (trustme); transports are measured interleaved, so a noisy neighbour on a shared
machine hits them alike."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.measure import Result, closed_loop, percentile
from meter.v1 import meter_pb2_grpc

HANDSHAKES = 100


class Certs:
    def __init__(self, workdir: Path) -> None:
        ca = trustme.CA()
        self.ca = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        server = ca.issue_cert("localhost", "127.0.0.1")
        client = ca.issue_cert("bench.client", common_name="bench")
        self.server_cert, self.server_key = workdir / "server.pem", workdir / "server.key"
        self.client_cert, self.client_key = workdir / "client.pem", workdir / "client.key"
        server.private_key_pem.write_to_path(str(self.server_key))
        self.server_cert.write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
        client.private_key_pem.write_to_path(str(self.client_key))
        self.client_cert.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))

    def credentials(self, mutual: bool) -> grpc.ChannelCredentials:
        if not mutual:
            return grpc.ssl_channel_credentials(self.ca.read_bytes())
        return grpc.ssl_channel_credentials(
            self.ca.read_bytes(), self.client_key.read_bytes(), self.client_cert.read_bytes()
        )


def start_tls_meters(url: str, workdir: Path, start_process) -> tuple[Certs, list[subprocess.Popen], int, int]:
    """(certs, processes, TLS port, mutual-TLS port)."""
    certs = Certs(workdir)
    base = [sys.executable, "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
            "--log-level", "INFO", "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]  # fmt: skip
    tls, tls_port = start_process(base, workdir / "meter-tls.log")
    try:
        mtls, mtls_port = start_process([*base, "--tls-client-ca", str(certs.ca)], workdir / "meter-mtls.log")
    except BaseException:
        tls.terminate()
        raise
    return certs, [tls, mtls], tls_port, mtls_port


async def first_rpc_times(targets: dict[str, Callable[[], grpc.aio.Channel]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(HANDSHAKES):
        for name, open_channel in targets.items():
            started = time.perf_counter()
            channel = open_channel()
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            times[name].append(time.perf_counter() - started)
            await channel.close()
    return times


async def tls_comparison(
    plain_port: int, tls_port: int, mtls_port: int, certs: Certs, make_call, auth, args
) -> list[Result]:
    """make_call(stubs, auth) -> an async call(i) for closed_loop (CheckQuota CHECK_ONLY here)."""
    options = [("grpc.ssl_target_name_override", "localhost")]
    targets = {
        "plaintext": lambda: grpc.aio.insecure_channel(f"127.0.0.1:{plain_port}"),
        "TLS": lambda: grpc.aio.secure_channel(f"127.0.0.1:{tls_port}", certs.credentials(False), options=options),
        "mutual TLS": lambda: grpc.aio.secure_channel(
            f"127.0.0.1:{mtls_port}", certs.credentials(True), options=options
        ),
    }
    times = await first_rpc_times(targets)
    results = []
    plain_p50 = statistics.median(times["plaintext"])
    for name, samples in times.items():
        samples.sort()
        r = Result(f"first RPC on a new channel, {name}", 1, len(samples), sum(samples),
                   percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3, 0)  # fmt: skip
        r.ratio_to_echo = statistics.median(samples) / plain_p50
        r.note = "ratio column: p50 / plaintext p50 (rate: sequential channels/s)"
        results.append(r)

    # Throughput: alternate plaintext and TLS twice and add up each transport's calls and seconds.
    channels = {name: [targets[name]() for _ in range(args.channels)] for name in ("plaintext", "TLS")}
    calls = {name: make_call([meter_pb2_grpc.MeterStub(c) for c in chans], auth) for name, chans in channels.items()}
    runs: dict[str, list[Result]] = {"plaintext": [], "TLS": []}
    for _ in range(2):
        for name in ("plaintext", "TLS"):
            await closed_loop(name, calls[name], args.concurrency, args.warmup)
            runs[name].append(await closed_loop(name, calls[name], args.concurrency, args.seconds / 2))
    totals = {}
    for name, rs in runs.items():
        total = Result(f"CheckQuota CHECK_ONLY over {name}", args.concurrency, sum(r.calls for r in rs),
                       sum(r.seconds for r in rs), statistics.mean(r.p50_ms for r in rs),
                       statistics.mean(r.p99_ms for r in rs), sum(r.errors for r in rs))  # fmt: skip
        totals[name] = total
        results.append(total)
    totals["TLS"].ratio_to_echo = totals["TLS"].rate / totals["plaintext"].rate
    totals["TLS"].note = "ratio column: TLS rate / plaintext rate"
    for chans in channels.values():
        for c in chans:
            await c.close()
    return results
