"""`meter serve` as a user runs it: embedded PostgreSQL, first-key hint, clean stop, data kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter.v1 import meter_pb2, meter_pb2_grpc
from meter_testing.requests import record

pytestmark = pytest.mark.slow
METER = [sys.executable, "-m", "meterd"]


class ServeProcess:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*METER, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--grace-period", "3"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.port = int(self.wait_for(r"listening on \S+ \(port (\d+)\)").group(1))

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text())
            if match:
                return match
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not in log:\n{self.log.read_text()}")

    def stop(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    except ProcessLookupError:
        return False


def test_serve_embedded_record_stop_and_keep_data(tmp_path):
    data_dir = tmp_path / "meter-data"
    server = ServeProcess(data_dir, tmp_path / "serve1.log")
    try:
        server.wait_for("No API keys yet")  # the first start tells how to get an admin key
        key = subprocess.run(
            [*METER, "keys", "create", "--tenant", "default", "--role", "admin", "--data-dir", str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            meter_pb2_grpc.MeterStub(channel).RecordCall(record("kept"), metadata=(("authorization", f"Bearer {key}"),))
    finally:
        assert server.stop(signal.SIGINT) == 0
    assert not postmaster_running(data_dir), "Ctrl-C must stop the embedded PostgreSQL"

    again = ServeProcess(data_dir, tmp_path / "serve2.log")
    try:
        again.wait_for("SERVING")
        assert "No API keys yet" not in again.log.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{again.port}") as channel:
            usage = meter_pb2_grpc.MeterStub(channel).GetUsage(
                meter_pb2.GetUsageRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
        assert usage.totals.calls == 1
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert not postmaster_running(data_dir)
