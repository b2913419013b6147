"""The control plane's operations on keys, limits and alert rules: validate, write through the
port, then drop what this process cached (other replicas follow through NOTIFY or their TTLs).

Prices have theirs in service/prices.py (PriceAdmin); the servicer (api/admin.py) only converts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from meterd.domain.alert_records import StoredRule
from meterd.domain.alerts import AlertRule
from meterd.domain.keys import ApiKey, validate_binding, validate_expiry, validate_roles
from meterd.domain.limits import Limit, StoredLimit
from meterd.service.ports import AlertPort, KeyPort, LimitPort


class KeyAdmin:
    def __init__(self, store: KeyPort, *, forget: Callable[[str], None], clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.forget = forget  # drops a key id from this process's key cache
        self.clock = clock

    async def create(
        self,
        tenant_id: str,
        roles: list[str],
        name: str = "",
        *,
        expires_at: dt.datetime | None = None,
        bind_cert_subject: str = "",
        bind_san: str = "",
    ) -> tuple[ApiKey, str]:
        """(the key, its secret: shown once)."""
        return await self.store.create(
            tenant_id,
            validate_roles(roles),
            name,
            expires_at=validate_expiry(expires_at, self.clock()),
            bound_cert_subject=validate_binding(bind_cert_subject, "bind_cert_subject"),
            bound_san=validate_binding(bind_san, "bind_san"),
        )

    async def list(self, tenant_id: str, include_revoked: bool = False) -> list[ApiKey]:
        return await self.store.list(tenant_id, include_revoked)

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey:
        key = await self.store.revoke(tenant_id, key_id)
        self.forget(key.id)
        return key


class LimitAdmin:
    def __init__(self, store: LimitPort, *, invalidate: Callable[[str], None]) -> None:
        self.store = store
        self.invalidate = invalidate  # drops the tenant's limits from this process's cache

    async def set(self, tenant_id: str, limit: Limit) -> tuple[StoredLimit, bool]:
        """(stored, created)."""
        stored = await self.store.set(tenant_id, limit)
        self.invalidate(tenant_id)
        return stored

    async def get(self, tenant_id: str, limit_id: str) -> StoredLimit:
        return await self.store.get(tenant_id, limit_id)

    async def list(self, tenant_id: str) -> list[StoredLimit]:
        return await self.store.list(tenant_id)

    async def delete(self, tenant_id: str, limit_id: str) -> None:
        await self.store.delete(tenant_id, limit_id)
        self.invalidate(tenant_id)


class AlertRuleAdmin:
    def __init__(self, store: AlertPort) -> None:
        self.store = store

    async def set(self, tenant_id: str, rule: AlertRule, keep_webhook_target: str = "") -> tuple[StoredRule, bool]:
        """(stored, created). Rules are read from the database by the triggers and the evaluator:
        nothing cached to drop. keep_webhook_target: see AlertPort.set_rule."""
        return await self.store.set_rule(tenant_id, rule, keep_webhook_target)

    async def list(self, tenant_id: str) -> list[StoredRule]:
        return await self.store.list_rules(tenant_id)

    async def delete(self, tenant_id: str, rule_id: str) -> None:
        await self.store.delete_rule(tenant_id, rule_id)
