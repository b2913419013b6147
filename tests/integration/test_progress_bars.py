"""`meter retention` and `meter prices reprice` draw a progress bar on stderr when it is a terminal
(a pseudo-terminal here) and print exactly the same stdout either way; without a terminal stderr
holds no bar (the other tests of these commands read their output through pipes)."""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess

import grpc
from google.protobuf import timestamp_pb2

from meter.v1 import meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.processes import METER
from meter_testing.requests import record


def _run(args: list[str], *, terminal: bool) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    if not terminal:
        done = subprocess.run([*METER, *args], capture_output=True, text=True, env=env, timeout=120, check=True)
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([*METER, *args], stdout=subprocess.PIPE, stderr=follower, text=True, env=env,
                              timeout=120, check=True)  # fmt: skip
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
        return done.stdout, seen.decode()
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)


async def test_retention_and_reprice_show_a_bar_only_on_a_terminal(fresh_database_url):
    now = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
    async with running_server(fresh_database_url, clock=FakeClock(now)) as server:
        tenant = await create_tenant(server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = meter_pb2_grpc.MeterStub(channel)
            for i in range(5):
                at = timestamp_pb2.Timestamp()
                at.FromDatetime(now - dt.timedelta(hours=i))
                await stub.RecordCall(record(call_id=f"p-{i}", occurred_at=at), metadata=tenant.auth("record"))
    db = ["--database-url", fresh_database_url]
    retention = ["retention", *db, "--older-than", "90d", "--dry-run", "--now", now.isoformat()]
    piped_out, piped_err = _run(retention, terminal=False)
    shown_out, shown_err = _run(retention, terminal=True)
    assert shown_out == piped_out and "would drop" in shown_out
    assert "retention: steps [" in shown_err and "100% 6/6" in shown_err
    assert "retention: steps" not in piped_err

    start, end = (now - dt.timedelta(days=1)).isoformat(), (now + dt.timedelta(hours=1)).isoformat()
    reprice = ["prices", "reprice", *db, "--tenant", tenant.id, "--from", start, "--to", end,
               "--include-client-costs"]  # fmt: skip
    piped_out, piped_err = _run(reprice, terminal=False)
    shown_out, shown_err = _run(reprice, terminal=True)
    assert piped_out.startswith("examined 5 calls") and shown_out.startswith("examined 5 calls")
    assert "reprice: calls examined 5" in shown_err and "reprice:" not in piped_err
