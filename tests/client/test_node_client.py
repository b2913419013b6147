"""The Node.js client under clients/node (grpc-js + proto-loader on the published protos) checks,
records and reads usage against a real server. Needs node and npm: skipped without them locally,
but a failure in CI (CI=true), where they must be installed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc
from meter_testing.certs import Pki, channel_credentials, mutual_tls
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import limit

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{tool} is required in CI (Node.js 18+ with npm) for the Node client test")
    pytest.skip(f"{tool} not installed")


async def run(*args: str, env: dict | None = None, within: float = 300) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=NODE_DIR,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(within):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{out.decode()}\n{err.decode()}"
    return out.decode()


async def node_modules_ready(npm: str) -> None:
    """`npm ci` once per package-lock.json (a stamp in node_modules says which one was installed)."""
    lock = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".meter-lock-sha256"
    if stamp.exists() and stamp.read_text() == lock:
        return
    await run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    stamp.write_text(lock)


async def test_node_client_checks_records_and_reads_usage(target, fresh_tenant, set_limits):
    node, npm = require("node"), require("npm")
    await node_modules_ready(npm)
    await set_limits(fresh_tenant, limit("node-requests", "REQUESTS", "DAY", 10))
    await check_example(node, target, fresh_tenant, {})


async def test_node_client_over_mutual_tls(database_url, tmp_path):
    """The same example against a server that requires a client certificate (real ones, made here)."""
    node, npm = require("node"), require("npm")
    await node_modules_ready(npm)
    pki = Pki(tmp_path)
    settings, client = mutual_tls(pki, "node", "meter.test")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        options = [("grpc.ssl_target_name_override", "meter.test")]
        creds = channel_credentials(pki.ca(), client)
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", creds, options=options) as channel:
            await admin_pb2_grpc.MeterAdminStub(channel).SetLimit(
                admin_pb2.SetLimitRequest(limit=limit("node-requests", "REQUESTS", "DAY", 10)), metadata=tenant.auth()
            )
        tls_env = {
            "METER_TLS_CA": str(pki.ca()),
            "METER_TLS_CLIENT_CERT": str(client.cert),
            "METER_TLS_CLIENT_KEY": str(client.key),
            "METER_TLS_SERVER_NAME": "meter.test",
        }
        await check_example(node, f"127.0.0.1:{server.port}", tenant, tls_env)


async def check_example(node: str, target: str, fresh_tenant, extra_env: dict) -> None:
    out = await run(
        node,
        "example.js",
        "node:user:1",
        env={
            "METER_TARGET": target,
            "METER_API_KEY": fresh_tenant.keys["admin"],
            "METER_CHECK_TIMEOUT_MS": "10000",
            **extra_env,
        },
    )
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["allowed"] is True and answer["reservation_id"]
    assert answer["limits"] == [{"limit_id": "node-requests", "used": 0, "reserved": 1, "max": 10}]
    assert answer["reservation_settled"] is True and answer["cost_nanos"] > 0
    assert answer["retry_is_duplicate"] is True
    assert answer["totals"] == {
        "calls": 1,
        "input_tokens": 900,
        "output_tokens": 250,
        "cached_read_tokens": 100,
        "cost_nanos": answer["cost_nanos"],
    }
