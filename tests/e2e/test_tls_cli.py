"""The CLI and `meter serve` with TLS, as an operator runs them: plaintext refused off loopback unless
--insecure, certificates re-read on SIGHUP, `alerts tail` over mutual TLS, keys with an expiry and a
certificate binding."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter_testing.certs import Pki, channel_credentials, install, mutual_tls
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.processes import METER, ServeProcess
from meterd.cli import build_parser


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki-cli"))


def meter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    return subprocess.run([*METER, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["serve"],
            ["--tls-cert", "--tls-key", "--tls-client-ca", "--tls-reload-interval", "--insecure", "--metrics-tls"],
        ),
        (["keys", "create"], ["--expires-in", "--bind-cert-subject", "--bind-san"]),
        (["alerts", "tail"], ["--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"]),
        (["console"], ["--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"]),
        (["usage"], ["--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"]),
        (["calls"], ["--tls-ca", "--tls-cert", "--tls-key"]),
        (["report"], ["--tls-ca", "--tls-cert", "--tls-key"]),
    ],
)
def test_help_lists_the_tls_and_key_options(argv, expected, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in expected:
        assert flag in out


def test_serve_refuses_plaintext_on_a_non_loopback_address_in_one_line():
    done = meter("serve", "--listen", "0.0.0.0:0", "--database-url", "postgresql://nowhere.invalid/meter")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--tls-cert FILE --tls-key FILE" in lines[0] and "--insecure" in lines[0], done.stderr


@pytest.mark.slow
def test_serve_with_insecure_listens_off_loopback_and_warns(tmp_path, database_url):
    server = ServeProcess(
        tmp_path / "insecure.log", "--listen", "0.0.0.0:0", "--insecure", "--database-url", database_url
    )
    try:
        server.wait_for("plaintext on the non-loopback address 0.0.0.0:0")
        with grpc.insecure_channel(server.address) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_sighup_rereads_the_certificate_files(tmp_path, database_url, pki):
    live = pki.issue("hup-live", ca="hup-old")
    args = ("--tls-cert", str(live.cert), "--tls-key", str(live.key), "--tls-reload-interval", "1h", "--workers", "2")
    server = ServeProcess(tmp_path / "hup.log", *args, "--database-url", database_url)
    try:
        server.wait_for(r"transport: TLS")
        # Every worker has loaded the old certificate, so the SIGHUP below reaches two of them.
        server.wait_for(r"all 2 workers SERVING")
        target = f"127.0.0.1:{server.port}"
        with grpc.secure_channel(target, channel_credentials(pki.ca("hup-old"))) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        install(pki.issue("hup-next", ca="hup-new"), live)
        server.proc.send_signal(signal.SIGHUP)
        # The supervisor forwards SIGHUP to every worker; each reloads (and logs) on its own.
        server.wait_for(r"(?s)TLS certificate reloaded.*TLS certificate reloaded")
        with grpc.secure_channel(target, channel_credentials(pki.ca("hup-new"))) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        assert server.stop() == 0


async def test_alerts_tail_dials_with_mutual_tls(database_url, pki):
    settings, client = mutual_tls(pki, "tail", "localhost", "127.0.0.1")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        tail = ["alerts", "tail", "--address", f"127.0.0.1:{server.port}", "--api-key", tenant.keys["read"]]
        tls = ["--tls-ca", str(pki.ca()), "--tls-cert", str(client.cert), "--tls-key", str(client.key)]
        done = await asyncio.to_thread(meter, *tail, *tls, "--heartbeat", "1", "--once")
        assert done.returncode == 0, done.stderr
        done = await asyncio.to_thread(meter, *tail, "--tls-cert", str(client.cert), "--once")
        assert done.returncode != 0 and "go together" in done.stderr


async def test_people_commands_dial_with_mutual_tls(database_url, pki):
    settings, client = mutual_tls(pki, "people", "localhost", "127.0.0.1")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        usage = ["usage", "--address", f"127.0.0.1:{server.port}", "--api-key", tenant.keys["read"], "--format", "json"]
        tls = ["--tls-ca", str(pki.ca()), "--tls-cert", str(client.cert), "--tls-key", str(client.key)]
        done = await asyncio.to_thread(meter, *usage, *tls)
        assert done.returncode == 0, done.stderr
        done = await asyncio.to_thread(meter, *usage, "--tls-ca", str(pki.ca()))  # no client certificate
        assert done.returncode != 0 and "Traceback" not in done.stderr


def test_keys_create_with_expiry_and_binding_and_list_shows_them(database_url):
    db = ("--database-url", database_url)
    made = meter("keys", "create", "--tenant", "cli-tls", "--role", "read", "--expires-in", "30d",
                 "--bind-cert-subject", "svc-a", "--bind-san", "svc-a.example", *db)  # fmt: skip
    assert made.returncode == 0 and made.stdout.startswith("mk_"), made.stderr
    listed = meter("keys", "list", "--tenant", "cli-tls", *db)
    row = listed.stdout.splitlines()[1].split("\t")
    assert row[1] == "read" and row[2] == "active" and row[4] != "never" and row[5] == "never"
    assert row[6] == "CN=svc-a,SAN=svc-a.example"
    bad = meter("keys", "create", "--tenant", "cli-tls", "--role", "read", "--expires-in", "soon", *db)
    assert bad.returncode != 0 and "--expires-in" in bad.stderr
