"""API keys over time: a revoked or expired key also ends the StreamAlerts streams it opened (not
only its next unary call), keys can expire, and ListApiKeys shows when each key was last used."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meter_testing.alerts import AlertReader
from meter_testing.fixtures import create_tenant, running_server

TTL = 0.4  # key-cache TTL of the server below: the revocation delay bound under test


@pytest.fixture(scope="module")
async def keyed(postgres):
    """(server, meter stub, admin stub) with a short key-cache TTL and last-use writes every 0.2 s."""
    url = postgres.create_database()
    try:
        async with running_server(url, key_cache_ttl=TTL, key_last_used_interval=0.2) as server:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield server, meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
    finally:
        postgres.drop_database(url)


def bearer(secret: str):
    return (("authorization", f"Bearer {secret}"),)


async def new_read_key(server, tenant_id: str, **options) -> str:
    _, secret = await server.keys.create(tenant_id, ["read"], "stream reader", **options)
    return secret


async def test_revoking_a_key_ends_the_streams_it_opened(keyed):
    server, meter, admin = keyed
    tenant = await create_tenant(server)
    by_rpc = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name="r", roles=[admin_pb2.ROLE_READ]), metadata=tenant.auth()
    )
    # Revoked on this replica (RevokeApiKey) and, for the other, directly in the database as another
    # replica would: each stream must end within about the key-cache TTL.
    elsewhere_secret = await new_read_key(server, tenant.id)
    elsewhere_id = elsewhere_secret.split("_")[1]
    streams = {
        "rpc": AlertReader(meter, bearer(by_rpc.secret), heartbeat_interval={"seconds": 300}),
        "db": AlertReader(meter, bearer(elsewhere_secret), heartbeat_interval={"seconds": 300}),
    }
    survivor = AlertReader(meter, tenant.auth("read"), heartbeat_interval={"seconds": 300})
    deadline = time.monotonic() + 5
    while server.alert_hub.subscribers < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)  # sleep-ok: poll interval of a wait with a deadline
    revoked_at = time.monotonic()
    await admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(id=by_rpc.key.id), metadata=tenant.auth())
    await server.keys.revoke(tenant.id, elsewhere_id)
    for reader in streams.values():
        await reader.wait_for(lambda r: r.error is not None, within=5)
        assert reader.error.code() == grpc.StatusCode.UNAUTHENTICATED, reader.error
    # Bound: a cached entry lives TTL, and streams re-check every TTL/2.
    assert time.monotonic() - revoked_at < 3 * TTL + 1
    assert survivor.error is None and not survivor._task.done()
    await survivor.close()


async def test_an_expired_key_is_refused_and_ends_its_streams(keyed):
    server, meter, admin = keyed
    tenant = await create_tenant(server)
    now = dt.datetime.now(dt.UTC)  # any-date: expiries relative to the server's clock
    expired = await new_read_key(server, tenant.id, expires_at=now - dt.timedelta(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=bearer(expired))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in err.value.details()

    soon = await new_read_key(server, tenant.id, expires_at=now + dt.timedelta(seconds=1.5))
    assert (await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=bearer(soon))).totals.calls == 0
    stream = AlertReader(meter, bearer(soon), heartbeat_interval={"seconds": 300})
    await stream.wait_for(lambda r: r.error is not None, within=10)
    assert stream.error.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in stream.error.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=bearer(soon))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_keys_carry_an_expiry_given_at_creation(keyed):
    server, _, admin = keyed
    tenant = await create_tenant(server)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # any-date: relative to the server's clock
    request = admin_pb2.CreateApiKeyRequest(name="30 days", roles=[admin_pb2.ROLE_RECORD])
    request.expire_time.FromDatetime(later)
    created = await admin.CreateApiKey(request, metadata=tenant.auth())
    assert abs(created.key.expire_time.ToDatetime(tzinfo=dt.UTC) - later) < dt.timedelta(seconds=1)
    request.expire_time.FromDatetime(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))  # any-date: in the past
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.CreateApiKey(request, metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expire_time" in str(err.value.trailing_metadata())


async def test_list_api_keys_shows_when_each_key_was_last_used(keyed):
    server, meter, admin = keyed
    tenant = await create_tenant(server)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)  # any-date: last use is stamped by the server
    for _ in range(20):
        await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    read_id = tenant.keys["read"].split("_")[1]
    check_id = tenant.keys["check"].split("_")[1]
    deadline = time.monotonic() + 10
    while True:
        keys = {k.id: k for k in (await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=tenant.auth())).keys}
        if keys[read_id].HasField("last_use_time"):
            break
        assert time.monotonic() < deadline, "last_use_time never written"
        await asyncio.sleep(0.05)  # sleep-ok: poll interval of a wait with a deadline
    assert keys[read_id].last_use_time.ToDatetime(tzinfo=dt.UTC) >= before
    assert not keys[check_id].HasField("last_use_time")  # never used
