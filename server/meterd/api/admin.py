"""The control plane servicer (admin role): API keys, limits, prices and alert rules."""

from __future__ import annotations

import datetime as dt

from meter.v1 import admin_pb2, admin_pb2_grpc
from meterd.api.alerts_codec import rule_from_proto, rule_to_proto
from meterd.api.convert import from_ts, ts
from meterd.api.interceptor import current_principal
from meterd.api.limits_codec import limit_from_proto, limit_to_proto
from meterd.domain.dimensions import LabelDimension
from meterd.domain.equivalences import ModelEquivalence, model_text
from meterd.domain.errors import InvalidArgument, require
from meterd.domain.keys import ApiKey
from meterd.domain.price_versions import MAX_LOAD, PRICE_RATE_FIELDS, StoredPrice, validate_price
from meterd.domain.pricing import Price
from meterd.service.admin import AlertRuleAdmin, KeyAdmin, LimitAdmin
from meterd.service.dimensions import DimensionAdmin
from meterd.service.equivalences import EquivalenceAdmin
from meterd.service.prices import PriceAdmin
from meterd.service.reprice import Repricer

_ROLE_NAMES = {
    admin_pb2.ROLE_CHECK: "check",
    admin_pb2.ROLE_RECORD: "record",
    admin_pb2.ROLE_READ: "read",
    admin_pb2.ROLE_ADMIN: "admin",
}
_ROLE_ENUMS = {name: value for value, name in _ROLE_NAMES.items()}


def _api_key(row: ApiKey) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(
        id=row.id,
        name=row.name,
        roles=[_ROLE_ENUMS[r] for r in row.roles],
        create_time=ts(row.created_at),
        revoke_time=ts(row.revoked_at),
        expire_time=ts(row.expires_at),
        last_use_time=ts(row.last_used_at),
        bound_cert_subject=row.bound_cert_subject,
        bound_san=row.bound_san,
    )


def _dimension(d: LabelDimension) -> admin_pb2.LabelDimension:
    return admin_pb2.LabelDimension(
        label_key=d.label_key, max_values_per_day=d.max_values_per_day, create_time=ts(d.created_at)
    )


def _equivalence(e: ModelEquivalence) -> admin_pb2.ModelEquivalence:
    return admin_pb2.ModelEquivalence(
        name=e.name,
        models=[model_text(p, m) for p, m in e.models],
        create_time=ts(e.created_at),
        update_time=ts(e.updated_at),
    )


def _price_from_proto(
    msg: admin_pb2.Price, prefix: str, violations: list[tuple[str, str]] | None = None
) -> Price | None:
    return validate_price(
        provider=msg.provider,
        model_pattern=msg.model_pattern,
        effective_from=from_ts(msg, "effective_from"),
        rates={field: getattr(msg, field) for field, _ in PRICE_RATE_FIELDS},
        note=msg.note,
        prefix=prefix,
        violations=violations,
    )


def _price_to_proto(stored: StoredPrice) -> admin_pb2.Price:
    p = stored.price
    return admin_pb2.Price(
        id=p.price_id,
        provider=p.provider,
        model_pattern=p.model_pattern,
        effective_from=ts(p.effective_from),
        note=p.note,
        create_time=ts(stored.created_at),
        service_tier=p.service_tier,
        match_rule=p.match_rule,
        tiers=[
            admin_pb2.PriceTier(rate=r.removesuffix("_per_mtok"), start_tokens=s, nanos_per_mtok=n)
            for r, s, n in p.tiers
        ],
        unit_kind=p.unit_kind,
        unit_divisor=p.unit_divisor,
        source=p.source,
        **{field: getattr(p, attr) for field, attr in PRICE_RATE_FIELDS},
    )


class AdminServicer(admin_pb2_grpc.MeterAdminServicer):
    def __init__(
        self,
        keys: KeyAdmin,
        limits: LimitAdmin,
        price_admin: PriceAdmin,
        repricer: Repricer,
        alert_rules: AlertRuleAdmin,
        dimensions: DimensionAdmin,
        equivalences: EquivalenceAdmin,
    ) -> None:
        self.dimensions = dimensions
        self.equivalences = equivalences
        self.keys = keys
        self.limits = limits
        self.price_admin = price_admin
        self.repricer = repricer
        self.alert_rules = alert_rules

    async def CreateApiKey(self, request, context):
        row, secret = await self.keys.create(
            current_principal().tenant_id,
            [_ROLE_NAMES.get(r, f"unknown({r})") for r in request.roles],
            request.name,
            expires_at=from_ts(request, "expire_time"),
            bind_cert_subject=request.bind_cert_subject,
            bind_san=request.bind_san,
        )
        return admin_pb2.CreateApiKeyResponse(key=_api_key(row), secret=secret)

    async def ListApiKeys(self, request, context):
        rows = await self.keys.list(current_principal().tenant_id, request.include_revoked)
        return admin_pb2.ListApiKeysResponse(keys=[_api_key(r) for r in rows])

    async def RevokeApiKey(self, request, context):
        row = await self.keys.revoke(current_principal().tenant_id, request.id)
        return admin_pb2.RevokeApiKeyResponse(key=_api_key(row))

    async def SetLimit(self, request, context):
        tenant = current_principal().tenant_id
        stored, created = await self.limits.set(tenant, limit_from_proto(request.limit))
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
        return admin_pb2.DeleteLimitResponse()

    async def SetPrice(self, request, context):
        price = _price_from_proto(request.price, "price")
        assert price is not None  # without a violations list, a bad price raises InvalidArgument
        stored = await self.price_admin.set(current_principal().tenant_id, price)
        return admin_pb2.SetPriceResponse(price=_price_to_proto(stored))

    async def ListPrices(self, request, context):
        stored = await self.price_admin.list(
            current_principal().tenant_id, provider=request.provider, model=request.model, at=from_ts(request, "at")
        )
        reply = admin_pb2.ListPricesResponse(prices=[_price_to_proto(s) for s in stored])
        latest = await self.price_admin.latest_import()
        if latest is not None:
            reply.catalog_source, reply.catalog_version = latest.source, latest.version
            reply.catalog_imported_at.CopyFrom(ts(latest.imported_at))
        return reply

    async def LoadPrices(self, request, context):
        if len(request.prices) > MAX_LOAD:
            raise InvalidArgument([("prices", f"at most {MAX_LOAD} versions per call")])
        violations: list[tuple[str, str]] = []
        prices = [_price_from_proto(p, f"prices[{i}]", violations) for i, p in enumerate(request.prices)]
        require(violations)  # hence no None left in prices
        added, skipped = await self.price_admin.load(
            current_principal().tenant_id,
            [p for p in prices if p is not None],
            include_default_catalog=request.include_default_catalog,
        )
        return admin_pb2.LoadPricesResponse(added=added, skipped=skipped)

    async def RepriceCalls(self, request, context):
        result = await self.repricer.reprice(
            current_principal().tenant_id,
            from_ts(request, "start"),
            from_ts(request, "end"),
            provider=request.provider,
            model=request.model,
            include_client_costs=request.include_client_costs,
        )
        return admin_pb2.RepriceCallsResponse(
            calls_examined=result.calls_examined,
            calls_changed=result.calls_changed,
            cost_delta_nanos=result.cost_delta_nanos,
        )

    async def SetAlertRule(self, request, context):
        stored, created = await self.alert_rules.set(
            current_principal().tenant_id,
            rule_from_proto(request.rule),
            keep_webhook_target=request.rule.webhook_target,
        )
        return admin_pb2.SetAlertRuleResponse(rule=rule_to_proto(stored), created=created)

    async def ListAlertRules(self, request, context):
        stored = await self.alert_rules.list(current_principal().tenant_id)
        return admin_pb2.ListAlertRulesResponse(rules=[rule_to_proto(s) for s in stored])

    async def DeleteAlertRule(self, request, context):
        await self.alert_rules.delete(current_principal().tenant_id, request.id)
        return admin_pb2.DeleteAlertRuleResponse()

    async def SetLabelDimension(self, request, context):
        stored, created = await self.dimensions.set(
            current_principal().tenant_id, request.label_key, request.max_values_per_day
        )
        return admin_pb2.SetLabelDimensionResponse(dimension=_dimension(stored), created=created)

    async def ListLabelDimensions(self, request, context):
        stored = await self.dimensions.list(current_principal().tenant_id)
        return admin_pb2.ListLabelDimensionsResponse(dimensions=[_dimension(d) for d in stored])

    async def DeleteLabelDimension(self, request, context):
        await self.dimensions.delete(current_principal().tenant_id, request.label_key)
        return admin_pb2.DeleteLabelDimensionResponse()

    async def BackfillLabelRollups(self, request, context):
        done = await self.dimensions.backfill(
            current_principal().tenant_id,
            request.label_key,
            request.error_codes,
            from_ts(request, "start"),
            from_ts(request, "end"),
        )
        reply = admin_pb2.BackfillLabelRollupsResponse(days=len(done.days))
        if done.days:
            reply.start.CopyFrom(ts(done.days[0]))
            reply.end.CopyFrom(ts(done.days[-1] + dt.timedelta(days=1)))
        return reply

    async def SetModelEquivalence(self, request, context):
        stored, created = await self.equivalences.set(current_principal().tenant_id, request.name, list(request.models))
        return admin_pb2.SetModelEquivalenceResponse(equivalence=_equivalence(stored), created=created)

    async def ListModelEquivalences(self, request, context):
        stored = await self.equivalences.list(current_principal().tenant_id)
        return admin_pb2.ListModelEquivalencesResponse(equivalences=[_equivalence(e) for e in stored])

    async def DeleteModelEquivalence(self, request, context):
        await self.equivalences.delete(current_principal().tenant_id, request.name)
        return admin_pb2.DeleteModelEquivalenceResponse()
