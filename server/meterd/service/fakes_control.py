"""In-memory keys, prices, alert and delivery stores (the ports of service/ports.py), for fast
tests of the control plane and the alert services; see service/fakes.py for the quota, record and
limit ones and why they exist."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.alert_records import DeliveryDue, DenialKey, StoredRule, TenantRule, WebhookDue
from meterd.domain.alerts import Alert, AlertFilter, AlertKind, AlertRule, Candidate, GroupFigures
from meterd.domain.clock import utc_now
from meterd.domain.errors import AlreadyExists, NotFound
from meterd.domain.keys import ApiKey, Principal, new_key
from meterd.domain.price_rules import CatalogProvider
from meterd.domain.price_versions import CatalogDiff, CatalogImport, StoredPrice, same_rates, version_key
from meterd.domain.pricing import Price
from meterd.domain.rule_secrets import keep_webhook
from meterd.service.fakes import Clock


class FakeKeyStore:
    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[ApiKey, str]] = {}  # id -> (key, secret)
        self.used: dict[str, dt.datetime] = {}

    async def create(
        self,
        tenant_id: str,
        roles: list[str],
        name: str = "",
        *,
        expires_at: dt.datetime | None = None,
        bound_cert_subject: str = "",
        bound_san: str = "",
    ) -> tuple[ApiKey, str]:
        key_id, secret = new_key()
        key = ApiKey(tenant_id, key_id, name, list(roles), self.clock(), None, expires_at, None, bound_cert_subject,
                     bound_san)  # fmt: skip
        self.keys[key_id] = (key, secret)
        return key, secret

    async def authenticate(self, full_key: str) -> Principal | None:
        for key, secret in self.keys.values():
            if secret == full_key and key.revoked_at is None:
                return Principal(key.tenant_id, key.id, frozenset(key.roles), expires_at=key.expires_at,
                                 bound_cert_subject=key.bound_cert_subject, bound_san=key.bound_san)  # fmt: skip
        return None

    async def mark_used(self, used: dict[str, dt.datetime]) -> None:
        for key_id, at in used.items():
            if key_id in self.used and self.used[key_id] >= at:
                continue
            self.used[key_id] = at

    async def list(self, tenant_id: str, include_revoked: bool = False) -> list[ApiKey]:
        keys = [k for k, _ in self.keys.values() if k.tenant_id == tenant_id]
        return sorted((k for k in keys if include_revoked or k.revoked_at is None), key=lambda k: (k.created_at, k.id))

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey:
        entry = self.keys.get(key_id)
        if entry is None or entry[0].tenant_id != tenant_id:
            raise NotFound(f"API key {key_id!r} does not exist in this tenant")
        key = entry[0] if entry[0].revoked_at else dataclasses.replace(entry[0], revoked_at=self.clock())
        self.keys[key_id] = (key, entry[1])
        return key


class FakePriceStore:
    """Versions per tenant ('' = the shared catalog); no retirement or catalog sync."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.prices: dict[str, list[StoredPrice]] = {}
        self.imports: list[CatalogImport] = []
        self._next_id = 1

    async def own(self, tenant_id: str) -> list[Price]:
        return [] if tenant_id == "" else [s.price for s in self.prices.get(tenant_id, [])]

    async def shared(self) -> tuple[list[Price], CatalogImport | None]:
        return [s.price for s in self.prices.get("", [])], (self.imports[-1] if self.imports else None)

    async def shared_stamp(self) -> object:
        return (self._next_id, len(self.imports))

    async def for_tenant(self, tenant_id: str) -> tuple[list[Price], list[Price], tuple[CatalogProvider, ...]]:
        shared, latest = await self.shared()
        return await self.own(tenant_id), shared, latest.providers if latest else ()

    async def latest_import(self) -> CatalogImport | None:
        return self.imports[-1] if self.imports else None

    async def versions(self, tenant_id: str) -> list[StoredPrice]:
        return [*self.prices.get(tenant_id, []), *(self.prices.get("", []) if tenant_id else [])]

    async def add_versions(self, tenant_id: str, prices: list[Price]) -> tuple[list[StoredPrice], int]:
        existing = {version_key(s.price): s.price for s in self.prices.get(tenant_id, [])}
        new = []
        for p in prices:
            old = existing.get(version_key(p))
            if old is None:
                new.append(p)
            elif not same_rates(old, p):
                raise AlreadyExists(f"price versions are immutable: {p.provider} {p.model_pattern!r} exists")
        added = []
        for p in new:
            stored = StoredPrice(dataclasses.replace(p, price_id=f"p{self._next_id}"), tenant_id == "", self.clock())
            self._next_id += 1
            added.append(stored)
        self.prices.setdefault(tenant_id, []).extend(added)
        return added, len(prices) - len(new)

    async def sync_catalog(self, prices: list[Price], **_: object) -> CatalogDiff | None:
        raise NotImplementedError("FakePriceStore does not sync catalogs")


class FakeAlertStore:
    """Rules and raised alerts in memory; the evaluator's reads answer what a test put in
    `groups`, `denial_counts` and `expired_counts` (keyed by tenant, rule id)."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.rules: dict[tuple[str, str], StoredRule] = {}
        self.alerts: list[Alert] = []
        self.raised_keys: set[tuple[str, str, str]] = set()  # (tenant, rule, dedup key)
        self.groups: dict[tuple[str, str], list[GroupFigures]] = {}
        self.denial_counts: dict[tuple[str, str], int] = {}
        self.expired_counts: dict[tuple[str, str], int] = {}
        self.denials_added: dict[DenialKey, int] = {}
        self.webhooks: list[WebhookDue] = []
        self.webhook_outcomes: list[tuple[int, bool, str, dt.timedelta | None]] = []

    async def set_rule(self, tenant_id: str, rule: AlertRule, keep_webhook_target: str = "") -> tuple[StoredRule, bool]:
        now = self.clock()
        old = self.rules.get((tenant_id, rule.id))
        if keep_webhook_target:
            rule = keep_webhook(rule, keep_webhook_target, old.rule if old else None)
        stored = StoredRule(rule, old.created_at if old else now, now)
        self.rules[(tenant_id, rule.id)] = stored
        return stored, old is None

    async def list_rules(self, tenant_id: str) -> list[StoredRule]:
        return [s for (t, _), s in sorted(self.rules.items()) if t == tenant_id]

    async def enabled_rules(self, kinds: frozenset[AlertKind]) -> list[TenantRule]:
        return [
            TenantRule(t, s.rule)
            for (t, _), s in sorted(self.rules.items())
            if not s.rule.disabled and s.rule.kind in kinds
        ]

    async def delete_rule(self, tenant_id: str, rule_id: str) -> None:
        if self.rules.pop((tenant_id, rule_id), None) is None:
            raise NotFound(f"alert rule {rule_id!r} does not exist in this tenant")

    async def replay(self, f: AlertFilter, after_id: int, limit: int = 500) -> list[Alert]:
        return [a for a in self.alerts if a.id > after_id and f.matches(a)][:limit]

    async def raise_candidates(self, tenant_id: str, candidates: list[Candidate], at: dt.datetime | None) -> list[int]:
        """Deduplicated per (rule, dedup key), like meter_raise_alert (cooldowns are not modelled)."""
        ids = []
        for c in sorted(candidates, key=lambda c: (c.rule.id, c.cooldown_key, c.dedup_key)):
            key = (tenant_id, c.rule.id, c.dedup_key)
            if key in self.raised_keys:
                continue
            self.raised_keys.add(key)
            alert = Alert(len(self.alerts) + 1, tenant_id, c.rule.id, c.rule.kind, c.rule.severity, c.subject,
                          c.provider, c.model, "", c.metric, c.observed, c.threshold, c.window_start, c.window_end,
                          c.message, at or self.clock())  # fmt: skip
            self.alerts.append(alert)
            ids.append(alert.id)
        return ids

    async def alert_exists(self, tenant_id: str, dedup_key: str) -> bool:
        return any(t == tenant_id and k == dedup_key for t, _, k in self.raised_keys)

    async def rollup_groups(
        self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime
    ) -> list[GroupFigures]:
        return self.groups.get((tenant_id, rule.id), [])

    async def denials(self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime) -> int:
        return self.denial_counts.get((tenant_id, rule.id), 0)

    async def expired_reservations(self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime) -> int:
        return self.expired_counts.get((tenant_id, rule.id), 0)

    async def add_denials(self, rows: dict[DenialKey, int]) -> None:
        for key, n in rows.items():
            self.denials_added[key] = self.denials_added.get(key, 0) + n

    async def claim_webhooks(self, lease: dt.timedelta, limit: int = 20) -> list[WebhookDue]:
        due, self.webhooks = self.webhooks[:limit], self.webhooks[limit:]
        return [dataclasses.replace(d, attempts=d.attempts + 1) for d in due]

    async def webhook_done(
        self, tenant_id: str, alert_id: int, *, ok: bool, error: str, retry_in: dt.timedelta | None
    ) -> None:
        self.webhook_outcomes.append((alert_id, ok, error, retry_in))


class FakeDeliveryStore:
    def __init__(self) -> None:
        self.due: list[DeliveryDue] = []
        self.outcomes: list[tuple[int, int, str, bool, str, dt.timedelta | None]] = []

    async def claim(self, lease: dt.timedelta, limit: int = 20) -> list[DeliveryDue]:
        due, self.due = self.due[:limit], self.due[limit:]
        return [dataclasses.replace(d, attempts=d.attempts + 1) for d in due]

    async def done(
        self,
        tenant_id: str,
        alert_id: int,
        channel: int,
        *,
        target: str,
        ok: bool,
        error: str,
        retry_in: dt.timedelta | None,
    ) -> None:
        self.outcomes.append((alert_id, channel, target, ok, error, retry_in))
