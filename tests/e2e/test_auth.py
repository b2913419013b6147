"""API keys, roles and tenant isolation, through the interceptor on a real port."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from meter.v1 import admin_pb2, meter_pb2
from meter_testing.requests import record


async def expect(code: grpc.StatusCode, call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details()


async def test_missing_key_is_unauthenticated(meter_stub):
    details = await expect(grpc.StatusCode.UNAUTHENTICATED, meter_stub.GetUsage(meter_pb2.GetUsageRequest()))
    assert "authorization: Bearer" in details


async def test_malformed_and_unknown_keys_are_unauthenticated(meter_stub):
    for value in ("Basic abc", "Bearer nope", "Bearer mk_aaaaaaaaaaaa_" + "A" * 32):
        await expect(
            grpc.StatusCode.UNAUTHENTICATED,
            meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=(("authorization", value),)),
        )


async def test_auth_errors_carry_error_info(meter_stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.GetUsage(meter_pb2.GetUsageRequest())
    info = error_details_pb2.ErrorInfo()
    assert rpc_status.from_call(err.value).details[0].Unpack(info)
    assert info.reason == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("record", {"RecordCall"}), ("read", {"GetUsage"}), ("check", set()), ("admin", {"RecordCall", "GetUsage"})],
)
async def test_roles_gate_methods(meter_stub, admin_stub, tenant, role, allowed):
    calls = {
        "RecordCall": lambda: meter_stub.RecordCall(record(), metadata=tenant.auth(role)),
        "GetUsage": lambda: meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth(role)),
        "ListApiKeys": lambda: admin_stub.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=tenant.auth(role)),
    }
    for name, call in calls.items():
        if name in allowed or role == "admin":
            await call()
        else:
            details = await expect(grpc.StatusCode.PERMISSION_DENIED, call())
            assert "role" in details


async def test_tenants_never_see_each_other(meter_stub, admin_stub, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    await meter_stub.RecordCall(record(), metadata=a.auth("record"))
    usage_b = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=b.auth("read"))
    assert usage_b.totals.calls == 0
    keys_a = await admin_stub.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=a.auth())
    keys_b = await admin_stub.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=b.auth())
    assert not {k.id for k in keys_a.keys} & {k.id for k in keys_b.keys}
    # B cannot revoke A's key: to B it does not exist.
    await expect(
        grpc.StatusCode.NOT_FOUND,
        admin_stub.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(id=keys_a.keys[0].id), metadata=b.auth()),
    )


async def test_created_key_works_and_revoked_key_stops_working(meter_stub, admin_stub, make_tenant):
    tenant = await make_tenant()
    created = await admin_stub.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name="ci", roles=[admin_pb2.ROLE_READ]), metadata=tenant.auth()
    )
    assert created.secret.startswith(f"mk_{created.key.id}_")
    auth = (("authorization", f"Bearer {created.secret}"),)
    await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
    await admin_stub.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(id=created.key.id), metadata=tenant.auth())
    await expect(grpc.StatusCode.UNAUTHENTICATED, meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth))
    listed = await admin_stub.ListApiKeys(admin_pb2.ListApiKeysRequest(include_revoked=True), metadata=tenant.auth())
    assert any(k.id == created.key.id and k.HasField("revoke_time") for k in listed.keys)


async def test_create_key_without_roles_is_invalid(admin_stub, tenant):
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        admin_stub.CreateApiKey(admin_pb2.CreateApiKeyRequest(), metadata=tenant.auth()),
    )
    assert "role" in details
