"""Alert latency across processes: a record committed through one `meter serve`, its alert arriving
on a StreamAlerts stream of ANOTHER `meter serve` on the same database (NOTIFY → that process's
hub → its stream).

Every record raises one CALL_COST alert (a rule with amount 1 nano-USD, on a tenant of its own).
The latency of an alert is its arrival time at the stream's client minus its `created_at`, which
the recording transaction takes just before it commits: an upper bound of commit → arrival.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from bench.measure import Result, percentile
from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc


def _record() -> meter_pb2.RecordCallRequest:
    return meter_pb2.RecordCallRequest(
        call_id=uuid.uuid4().hex, subject="user:1", provider="openai", model="gpt-4.1", operation="chat",
        usage=common_pb2.Usage(input_tokens=100, output_tokens=50), cost_nanos=1000,
    )  # fmt: skip


async def alert_latency(url: str, port_a: int, port_b: int, seconds: float, concurrency: int) -> list[Result]:
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "meterd", "keys", "create", "--tenant", "bench-alerts", "--role", "admin",
         "--database-url", url], check=True, capture_output=True, text=True,
    )  # fmt: skip
    key = created.stdout.strip()
    auth = (("authorization", f"Bearer {key}"),)
    results = []
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port_a}") as a,
        grpc.aio.insecure_channel(f"127.0.0.1:{port_b}") as b,
    ):
        meter_a, meter_b = meter_pb2_grpc.MeterStub(a), meter_pb2_grpc.MeterStub(b)
        await admin_pb2_grpc.MeterAdminStub(a).SetAlertRule(
            admin_pb2.SetAlertRuleRequest(
                rule=admin_pb2.AlertRule(id="every-call", kind=common_pb2.ALERT_KIND_CALL_COST,
                                         severity=common_pb2.SEVERITY_INFO, amount_nanos=1)
            ),
            metadata=auth,
        )  # fmt: skip
        for name, workers in (("1 record at a time", 1), (f"{concurrency} concurrent records", concurrency)):
            latencies: list[float] = []
            sent = 0
            stream = meter_b.StreamAlerts(meter_pb2.StreamAlertsRequest(), metadata=auth)

            async def read(stream=stream, latencies=latencies) -> None:
                async for response in stream:
                    if response.HasField("alert"):
                        created = response.alert.created_at.ToNanoseconds() / 1e9
                        latencies.append(time.time() - created)

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.5)  # subscribed
            stop = time.monotonic() + seconds

            async def worker(stop: float = stop) -> None:
                nonlocal sent
                while time.monotonic() < stop:
                    await meter_a.RecordCall(_record(), metadata=auth)
                    sent += 1

            await asyncio.gather(*(worker() for _ in range(workers)))
            for _ in range(200):  # up to 10 s for the last alerts
                if len(latencies) >= sent:
                    break
                await asyncio.sleep(0.05)
            stream.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            got = sorted(latencies)
            results.append(
                Result(
                    scenario=f"alert latency, other process, {name}",
                    concurrency=workers,
                    calls=len(got),
                    seconds=seconds,
                    p50_ms=percentile(got, 0.5) * 1000,
                    p99_ms=percentile(got, 0.99) * 1000,
                    errors=sent - len(got),
                    note=f"record commit → stream on another process (max {got[-1] * 1000:.1f} ms); errors = lost",
                )
            )
    return results


def start_second_meter(url: str, log: Path, start_process) -> tuple[subprocess.Popen, int]:
    args = [sys.executable, "-m", "meterd", "serve", "--database-url", url, "--listen", "127.0.0.1:0",
            "--log-level", "INFO"]  # fmt: skip
    return start_process(args, log)
