"""MeterAdmin limit RPCs: validation, create/replace/get/list/delete, tenant scoping."""

from __future__ import annotations

import grpc
import pytest

from meter.v1 import admin_pb2, common_pb2
from meter_testing.requests import field_violations, limit


async def test_set_get_list_delete(admin_stub, make_tenant):
    tenant = await make_tenant()
    created = await admin_stub.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("team-daily", "COST_NANOS", "DAY", 5_000_000_000,
                                              selector={"subject_prefix": "team:search/"})),
        metadata=tenant.auth(),
    )  # fmt: skip
    assert created.created and created.limit.action == common_pb2.LIMIT_ACTION_DENY
    assert created.limit.partition == common_pb2.PARTITION_SHARED and created.limit.HasField("create_time")
    replaced = await admin_stub.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("team-daily", "COST_NANOS", "DAY", 9)), metadata=tenant.auth()
    )
    assert not replaced.created and replaced.limit.max == 9
    got = await admin_stub.GetLimit(admin_pb2.GetLimitRequest(id="team-daily"), metadata=tenant.auth())
    assert got.limit.max == 9 and got.limit.window.kind == common_pb2.WINDOW_KIND_DAY
    listed = await admin_stub.ListLimits(admin_pb2.ListLimitsRequest(), metadata=tenant.auth())
    assert [lim.id for lim in listed.limits] == ["team-daily"]
    await admin_stub.DeleteLimit(admin_pb2.DeleteLimitRequest(id="team-daily"), metadata=tenant.auth())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.GetLimit(admin_pb2.GetLimitRequest(id="team-daily"), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_fixed_and_sliding_windows_keep_their_duration(admin_stub, tenant):
    reply = await admin_stub.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("burst", "REQUESTS", "SLIDING", 5, seconds=30)), metadata=tenant.auth()
    )
    assert reply.limit.window.kind == common_pb2.WINDOW_KIND_SLIDING and reply.limit.window.duration.seconds == 30


async def test_invalid_limit_lists_every_violation(admin_stub, tenant):
    bad = admin_pb2.Limit(
        id="has space",
        max=0,
        selector=common_pb2.Selector(subject="a", subject_prefix="b"),
        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_FIXED),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.SetLimit(admin_pb2.SetLimitRequest(limit=bad), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = set(field_violations(err.value))
    assert {"limit.id", "limit.max", "limit.metric", "limit.window.duration"} <= fields
    assert any(f.startswith("limit.selector") for f in fields)


async def test_limits_are_scoped_to_the_tenant(admin_stub, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    await admin_stub.SetLimit(admin_pb2.SetLimitRequest(limit=limit("mine")), metadata=a.auth())
    listed = await admin_stub.ListLimits(admin_pb2.ListLimitsRequest(), metadata=b.auth())
    assert not listed.limits
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.DeleteLimit(admin_pb2.DeleteLimitRequest(id="mine"), metadata=b.auth())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
