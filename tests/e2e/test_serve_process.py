"""`meter serve` as a user runs it: embedded PostgreSQL, first-key hint, clean stop, data kept."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter.v1 import meter_pb2, meter_pb2_grpc
from meter_testing.processes import ServeProcess, create_key
from meter_testing.requests import record

pytestmark = pytest.mark.slow


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
    server = ServeProcess(tmp_path / "serve1.log", "--data-dir", str(data_dir), "--grace-period", "3")
    try:
        server.wait_for("No API keys yet")  # the first start tells how to get an admin key
        key = create_key("default", "admin", "--data-dir", str(data_dir))
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            meter_pb2_grpc.MeterStub(channel).RecordCall(record("kept"), metadata=(("authorization", f"Bearer {key}"),))
    finally:
        assert server.stop(signal.SIGINT) == 0
    assert not postmaster_running(data_dir), "Ctrl-C must stop the embedded PostgreSQL"

    again = ServeProcess(tmp_path / "serve2.log", "--data-dir", str(data_dir), "--grace-period", "3")
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


def test_two_processes_share_one_port_with_reuse_port(tmp_path, database_url):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("--database-url", database_url, "--reuse-port", "true")
    first = ServeProcess(tmp_path / "a.log", "--listen", f"127.0.0.1:{port}", *args)
    try:
        second = ServeProcess(tmp_path / "b.log", "--listen", f"127.0.0.1:{port}", *args)
        try:
            assert first.port == second.port == port
            second.wait_for("SERVING")
            first.wait_for("SERVING")
        finally:
            assert second.stop() == 0
    finally:
        assert first.stop() == 0


@pytest.mark.parametrize("flag", ["--listen", "--metrics-listen"])
def test_a_busy_port_is_one_line_naming_the_setting_not_a_traceback(database_url, flag):
    import socket
    import subprocess

    from meter_testing.processes import METER

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        args = ["--listen", address] if flag == "--listen" else ["--listen", "127.0.0.1:0", flag, address]
        env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
        done = subprocess.run(
            [*METER, "serve", "--database-url", database_url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    env_name = "METER_LISTEN" if flag == "--listen" else "METER_METRICS_LISTEN"
    assert last.startswith(f"meter: cannot listen on {address}") and flag in last and env_name in last, last
