"""The control plane servicer (admin role): API keys and limits now; prices and alert rules later."""

from __future__ import annotations

from meter.v1 import admin_pb2, admin_pb2_grpc
from meterd.api.convert import ts
from meterd.api.interceptor import KeyCache, current_principal
from meterd.api.limits_codec import limit_from_proto, limit_to_proto
from meterd.domain.errors import Unimplemented
from meterd.domain.keys import validate_roles
from meterd.service.limit_cache import LimitCache
from meterd.store.keys import ApiKeyRow, KeyStore
from meterd.store.limits import LimitStore

_ROLE_NAMES = {
    admin_pb2.ROLE_CHECK: "check",
    admin_pb2.ROLE_RECORD: "record",
    admin_pb2.ROLE_READ: "read",
    admin_pb2.ROLE_ADMIN: "admin",
}
_ROLE_ENUMS = {name: value for value, name in _ROLE_NAMES.items()}


def _api_key(row: ApiKeyRow) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(
        id=row.id,
        name=row.name,
        roles=[_ROLE_ENUMS[r] for r in row.roles],
        create_time=ts(row.created_at),
        revoke_time=ts(row.revoked_at),
    )


class AdminServicer(admin_pb2_grpc.MeterAdminServicer):
    def __init__(self, keys: KeyStore, key_cache: KeyCache, limits: LimitStore, limit_cache: LimitCache) -> None:
        self.keys = keys
        self.key_cache = key_cache
        self.limits = limits
        self.limit_cache = limit_cache

    async def CreateApiKey(self, request, context):
        roles = validate_roles([_ROLE_NAMES.get(r, f"unknown({r})") for r in request.roles])
        row, secret = await self.keys.create(current_principal().tenant_id, roles, request.name)
        return admin_pb2.CreateApiKeyResponse(key=_api_key(row), secret=secret)

    async def ListApiKeys(self, request, context):
        rows = await self.keys.list(current_principal().tenant_id, request.include_revoked)
        return admin_pb2.ListApiKeysResponse(keys=[_api_key(r) for r in rows])

    async def RevokeApiKey(self, request, context):
        row = await self.keys.revoke(current_principal().tenant_id, request.id)
        self.key_cache.forget(row.id)
        return admin_pb2.RevokeApiKeyResponse(key=_api_key(row))

    async def SetLimit(self, request, context):
        tenant = current_principal().tenant_id
        stored, created = await self.limits.set(tenant, limit_from_proto(request.limit))
        self.limit_cache.invalidate(tenant)
        return admin_pb2.SetLimitResponse(limit=limit_to_proto(stored), created=created)

    async def GetLimit(self, request, context):
        stored = await self.limits.get(current_principal().tenant_id, request.id)
        return admin_pb2.GetLimitResponse(limit=limit_to_proto(stored))

    async def ListLimits(self, request, context):
        stored = await self.limits.list(current_principal().tenant_id)
        return admin_pb2.ListLimitsResponse(limits=[limit_to_proto(s) for s in stored])

    async def DeleteLimit(self, request, context):
        tenant = current_principal().tenant_id
        await self.limits.delete(tenant, request.id)
        self.limit_cache.invalidate(tenant)
        return admin_pb2.DeleteLimitResponse()

    async def SetPrice(self, request, context):
        raise Unimplemented("the pricing catalog admin (set, list, load, reprice) is not built yet")

    ListPrices = LoadPrices = RepriceCalls = SetPrice

    async def SetAlertRule(self, request, context):
        raise Unimplemented("alert rules are managed by the alert engine, not built yet")

    ListAlertRules = DeleteAlertRule = SetAlertRule
