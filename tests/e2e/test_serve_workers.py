"""`meter serve --workers N` as an operator runs it: one port, N processes, one service."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter_testing.processes import METER, ServeProcess
from meter_testing.waiting import eventually_sync as eventually

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def workers_by_pid(metrics: str) -> dict[int, str]:
    return {
        int(pid): worker for pid, worker in re.findall(r'^meter_worker\{pid="(\d+)",worker="(\d+)"\}', metrics, re.M)
    }


def handled_by_worker(metrics: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for labels, value in re.findall(r"^grpc_server_handled_total\{([^}]*)\} (\S+)", metrics, re.M):
        worker = re.search(r'worker="(\d+)"', labels).group(1)
        counts[worker] = counts.get(worker, 0) + float(value)
    return counts


def health_checks(port: int, connections: int) -> None:
    """One RPC on each of `connections` separate TCP connections (the kernel balances connections)."""
    for _ in range(connections):
        options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not a shared one
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def test_two_workers_serve_one_port_and_stop_together(tmp_path):
    """Fresh embedded database: PostgreSQL starts once (in the parent), migrations run once, both
    workers serve RPCs, one evaluator leads, SIGHUP reaches both, SIGTERM stops all with exit 0."""
    metrics_port = free_port()
    server = ServeProcess(
        tmp_path / "serve.log",
        *("--workers", "2", "--data-dir", str(tmp_path / "data"), "--metrics-listen", f"127.0.0.1:{metrics_port}"),
        *("--grace-period", "3", "--alert-eval-interval", "1"),
    )
    pids: dict[int, str] = {}
    try:
        server.wait_for("all 2 workers SERVING")
        server.wait_for("No API keys yet")  # told once, by worker 0
        health_checks(server.port, 24)
        metrics = scrape(metrics_port)
        pids = workers_by_pid(metrics)
        assert sorted(pids.values()) == ["0", "1"], metrics
        assert all(parent_of(pid) == server.proc.pid for pid in pids)
        handled = handled_by_worker(metrics)
        assert handled.get("0", 0) > 0 and handled.get("1", 0) > 0, handled  # 2 x 2^-24 to fail by chance

        server.wait_for("this replica is the leader")
        log = server.log.read_text()
        assert log.count("embedded PostgreSQL started") == 1
        assert log.count("applied migration 0001_init.sql") == 1, "migrations must run once, under their lock"
        assert log.count("this replica is the leader") == 1
        assert log.count("No API keys yet") == 1

        server.proc.send_signal(signal.SIGHUP)  # forwarded; without TLS it must not kill a worker
        eventually(lambda: server.log.read_text().count("SIGHUP: no TLS files to reload") == 2)
        health_checks(server.port, 4)
        assert workers_by_pid(scrape(metrics_port)) == pids
    finally:
        assert server.stop(signal.SIGTERM) == 0
    log = server.log.read_text()
    assert log.count("meterd.app: stopped") == 2, log  # each drained: health NOT_SERVING, graceful stop
    assert pids and not any(alive(pid) for pid in pids), "no worker may outlive the service"


def test_a_worker_that_dies_is_restarted(tmp_path, database_url):
    metrics_port = free_port()
    server = ServeProcess(
        tmp_path / "serve.log",
        *("--workers", "2", "--database-url", database_url, "--metrics-listen", f"127.0.0.1:{metrics_port}"),
    )
    try:
        server.wait_for("all 2 workers SERVING")
        before = workers_by_pid(scrape(metrics_port))
        victim = next(pid for pid, worker in before.items() if worker == "1")
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf"worker 1 \(pid {victim}\) died with code -9: restarting it")
        after = eventually(lambda: (found := workers_by_pid(scrape(metrics_port))) and len(found) == 2 and found)
        assert victim not in after and sorted(after.values()) == ["0", "1"]
        assert "meter_worker_restarts_total 1.0" in scrape(metrics_port)
        # The new worker listens at once and says NOT_SERVING until its pool is open, as any replica.
        eventually(lambda: server.log.read_text().count("all 2 workers SERVING") == 2)
        health_checks(server.port, 8)
    finally:
        assert server.stop() == 0


def test_a_worker_that_cannot_start_stops_the_service(tmp_path, database_url):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    done = subprocess.run(
        [*METER, "serve", "--workers", "2", "--listen", "127.0.0.1:0", "--database-url", database_url]
        + ["--tls-cert", str(bad), "--tls-key", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "before it was serving: stopping" in done.stderr
    assert "meter: worker" in done.stderr and "bad.pem" in done.stderr


def test_a_busy_port_stops_before_any_worker_starts(database_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
        done = subprocess.run(
            [*METER, "serve", "--workers", "2", "--database-url", database_url, "--listen", address],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert done.returncode == 1
    assert "worker 0 started" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"meter: cannot listen on {address}")


def test_serve_help_documents_workers():
    done = subprocess.run([*METER, "serve", "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "--workers" in done.stdout and "METER_WORKERS" in done.stdout and "one per CPU" in done.stdout
