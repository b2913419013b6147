"""TLS and mutual TLS on a real port with real certificates made in this run: TLS works, plaintext to a
TLS port fails cleanly, mTLS refuses clients without a certificate or from another CA, keys bound to a
certificate are refused with another one, and certificates rotate without a restart or a dropped
connection (a bad new file is refused and the old one stays)."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meter_testing.alerts import AlertReader
from meter_testing.certs import Pem, Pki, channel_credentials, install
from meter_testing.fixtures import create_tenant, running_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, name: str, *, mutual: bool = False, ca: str = "ca") -> dict:
    server = pki.issue(name, "localhost", "127.0.0.1", ca=ca)
    settings = {"tls_cert": server.cert, "tls_key": server.key, "tls_reload_interval": "0.1"}
    if mutual:
        settings["tls_client_ca"] = pki.ca("clients")
    return settings


async def until(predicate, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)  # sleep-ok: poll interval of a wait with a deadline


async def usage(channel, tenant, role: str = "read"):
    return await meter_pb2_grpc.MeterStub(channel).GetUsage(
        meter_pb2.GetUsageRequest(), metadata=tenant.auth(role), timeout=15
    )


async def refused(channel) -> grpc.aio.AioRpcError:
    """The connection is refused during the handshake: UNAVAILABLE at once, not a hang until the deadline."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert time.monotonic() - started < 4
    return err.value


async def test_tls_serves_and_plaintext_or_an_untrusted_server_fails_cleanly(database_url, pki):
    async with running_server(database_url, **tls_settings(pki, "srv-tls")) as server:
        tenant = await create_tenant(server)
        target = f"127.0.0.1:{server.port}"
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca())) as channel:
            assert (await usage(channel, tenant)).totals.calls == 0
        async with grpc.aio.insecure_channel(target) as channel:
            await refused(channel)
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca("stranger"))) as channel:
            await refused(channel)  # the client does not trust the server's CA


async def test_mutual_tls_refuses_a_client_without_a_certificate_or_from_another_ca(database_url, pki):
    async with running_server(database_url, **tls_settings(pki, "srv-mtls", mutual=True)) as server:
        tenant = await create_tenant(server)
        target = f"127.0.0.1:{server.port}"
        good = pki.issue("client-good", "good.example", common_name="good", ca="clients")
        rogue = pki.issue("client-rogue", "good.example", common_name="good", ca="rogue-ca")
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca(), good)) as channel:
            assert (await usage(channel, tenant)).totals.calls == 0
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca())) as channel:
            await refused(channel)
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca(), rogue)) as channel:
            await refused(channel)


async def test_a_key_bound_to_a_certificate_is_refused_with_another_one(database_url, pki):
    async with running_server(database_url, **tls_settings(pki, "srv-bound", mutual=True)) as server:
        tenant = await create_tenant(server)
        target = f"127.0.0.1:{server.port}"
        alice = pki.issue("alice", "alice.svc.example", "spiffe.example", common_name="alice", ca="clients")
        bob = pki.issue("bob", "bob.svc.example", common_name="bob", ca="clients")
        async with (
            grpc.aio.secure_channel(target, channel_credentials(pki.ca(), alice)) as as_alice,
            grpc.aio.secure_channel(target, channel_credentials(pki.ca(), bob)) as as_bob,
        ):
            admin = admin_pb2_grpc.MeterAdminStub(as_alice)
            by_cn = await admin.CreateApiKey(
                admin_pb2.CreateApiKeyRequest(name="cn", roles=[admin_pb2.ROLE_READ], bind_cert_subject="alice"),
                metadata=tenant.auth(),
            )
            by_san = await admin.CreateApiKey(
                admin_pb2.CreateApiKeyRequest(name="san", roles=[admin_pb2.ROLE_READ], bind_san="alice.svc.example"),
                metadata=tenant.auth(),
            )
            listed = {
                k.id: k for k in (await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=tenant.auth())).keys
            }
            assert listed[by_cn.key.id].bound_cert_subject == "alice" and not listed[by_cn.key.id].bound_san
            assert listed[by_san.key.id].bound_san == "alice.svc.example"
            for created in (by_cn, by_san):
                auth = (("authorization", f"Bearer {created.secret}"),)
                ok = await meter_pb2_grpc.MeterStub(as_alice).GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
                assert ok.totals.calls == 0
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await meter_pb2_grpc.MeterStub(as_bob).GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "bound to a client certificate" in err.value.details() and "CN='bob'" in err.value.details()
                assert "alice" not in err.value.details()  # the expected identity is never revealed
            assert (await usage(as_bob, tenant)).totals.calls == 0  # unbound keys work with any certificate
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await admin.CreateApiKey(
                    admin_pb2.CreateApiKeyRequest(roles=[admin_pb2.ROLE_READ], bind_san="x" * 300),
                    metadata=tenant.auth(),
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rotation_takes_effect_without_restart_and_keeps_open_connections(database_url, pki):
    settings = tls_settings(pki, "srv-rotate", ca="old-ca")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        target = f"127.0.0.1:{server.port}"
        async with grpc.aio.secure_channel(target, channel_credentials(pki.ca("old-ca"))) as old:
            assert (await usage(old, tenant)).totals.calls == 0
            stream = AlertReader(meter_pb2_grpc.MeterStub(old), tenant.auth("read"), heartbeat_interval={"seconds": 1})
            await stream.wait_for(lambda r: len(r.heartbeats) >= 1)

            # A bad new certificate (a key that does not match it) is refused; the old one stays.
            current = Pem(settings["tls_cert"], settings["tls_key"])
            mismatched = pki.issue("mismatch", "localhost", "127.0.0.1", ca="new-ca")
            current.cert.write_bytes(mismatched.cert.read_bytes())
            await until(lambda: server.tls.refused == 1)
            assert server.tls.reloads == 0
            async with grpc.aio.secure_channel(target, channel_credentials(pki.ca("old-ca"))) as again:
                assert (await usage(again, tenant)).totals.calls == 0

            install(pki.issue("srv-rotated", "localhost", "127.0.0.1", ca="new-ca"), current)
            await until(lambda: server.tls.reloads == 1)
            async with grpc.aio.secure_channel(target, channel_credentials(pki.ca("new-ca"))) as new:
                assert (await usage(new, tenant)).totals.calls == 0
            async with grpc.aio.secure_channel(target, channel_credentials(pki.ca("old-ca"))) as stale:
                await refused(stale)  # new connections get the new certificate only

            # The connection made before the rotation still carries RPCs and its open stream.
            assert (await usage(old, tenant)).totals.calls == 0
            seen = len(stream.heartbeats)
            await stream.wait_for(lambda r: len(r.heartbeats) > seen)
            assert stream.error is None
            await stream.close()


async def test_metrics_are_served_over_https_with_the_same_certificate(database_url, pki):
    settings = tls_settings(pki, "srv-metrics") | {"metrics_listen": "127.0.0.1:0", "metrics_tls": "true"}
    async with running_server(database_url, **settings) as server:
        context = ssl.create_default_context(cafile=str(pki.ca()))
        url = f"https://127.0.0.1:{server.metrics_http.server_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, context=context, timeout=5).read())
        assert b"meter_db_pool_size" in body
        with pytest.raises((OSError, http.client.HTTPException)):  # plaintext HTTP gets no metrics
            await asyncio.to_thread(lambda: urllib.request.urlopen(url.replace("https", "http"), timeout=5).read())

        # Rotated with the gRPC certificate: the next scrape gets the new one.
        install(
            pki.issue("srv-metrics-next", "localhost", "127.0.0.1", ca="metrics-new"),
            Pem(settings["tls_cert"], settings["tls_key"]),
        )
        await until(lambda: server.tls.reloads == 1)
        context = ssl.create_default_context(cafile=str(pki.ca("metrics-new")))
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, context=context, timeout=5).read())
        assert b"meter_db_pool_size" in body
