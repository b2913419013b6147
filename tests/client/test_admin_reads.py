"""The clients' admin reads (list_limits, list_prices, list_alert_rules, list_api_keys) against the real
server: what an admin key sees, and that a read key is refused rather than shown an empty list."""

from __future__ import annotations

import asyncio

import pytest

from meter import AsyncMeterClient, MeterAuthError, MeterClient, MeterError
from meter.v1 import admin_pb2, common_pb2


def _limit(limit_id: str) -> admin_pb2.Limit:
    return admin_pb2.Limit(
        id=limit_id,
        selector=common_pb2.Selector(subject_prefix="user:"),
        metric=common_pb2.METRIC_COST_NANOS,
        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY),
        max=5_000_000_000,
    )


async def test_async_admin_reads(fresh_tenant, target, set_limits, admin_stub):
    await set_limits(fresh_tenant, _limit("daily-users"))
    client = AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"])
    try:
        assert [lim.id for lim in await client.list_limits()] == ["daily-users"]
        assert len(await client.list_prices()) > 0  # the bundled catalog
        assert await client.list_alert_rules() == []
        names = sorted(k.name for k in await client.list_api_keys())
        assert names == ["test admin", "test check", "test read", "test record"]
    finally:
        await client.close()
    reader = AsyncMeterClient(target, api_key=fresh_tenant.keys["read"])
    try:
        with pytest.raises(MeterError) as denied:
            await reader.list_limits()
        assert "admin" in str(denied.value)
    finally:
        await reader.close()


async def test_sync_admin_reads(fresh_tenant, target, set_limits):
    await set_limits(fresh_tenant, _limit("daily"))

    def read():
        with MeterClient(target, api_key=fresh_tenant.keys["admin"]) as client:
            return [lim.id for lim in client.list_limits()], len(client.list_api_keys(include_revoked=True))

    assert await asyncio.to_thread(read) == (["daily"], 4)

    def unknown_key():
        with MeterClient(target, api_key="mk_nope_nope") as client:
            client.list_limits()

    with pytest.raises(MeterAuthError):
        await asyncio.to_thread(unknown_key)


async def test_async_admin_deletes_and_revokes(fresh_tenant, target, set_limits, admin_stub):
    await set_limits(fresh_tenant, _limit("gone"))
    client = AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"])
    try:
        await client.delete_limit("gone")
        assert await client.list_limits() == []
        read_key = next(k for k in await client.list_api_keys() if k.name == "test read")
        revoked = await client.revoke_api_key(read_key.id)
        assert revoked.revoke_time.seconds > 0
        with pytest.raises(MeterError, match="NOT_FOUND"):
            await client.delete_alert_rule("no-such-rule")
    finally:
        await client.close()


async def test_sync_admin_writes(fresh_tenant, target):
    def write():
        with MeterClient(target, api_key=fresh_tenant.keys["admin"]) as client:
            created = client.set_limit(_limit("sync-made")).created
            key = client.create_api_key("sync key", [admin_pb2.ROLE_READ])
            client.revoke_api_key(key.key.id)
            client.delete_limit("sync-made")
            return created, key.secret.startswith("mk_"), client.list_limits()

    assert await asyncio.to_thread(write) == (True, True, [])
