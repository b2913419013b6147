"""In-memory implementations of the ports (service/ports.py), for fast tests of the services.

Shipped with the server (like gubernator's mock) so that any test, ours or an embedder's, can run
QuotaService, MeteringService, the admin services and the alert evaluator without PostgreSQL. They
decide with the same domain functions the store uses (domain.quota.blocks, domain.records.plan_record),
and tests/integration/test_port_contract.py runs the same port-level cases against them and against
the real stores, so they cannot drift. Not safe for concurrency across processes, obviously; within
one event loop every method runs without awaiting, so each call is atomic like a transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from meterd.domain.alert_records import DeliveryDue, DenialKey, StoredRule, TenantRule, WebhookDue
from meterd.domain.alerts import Alert, AlertFilter, AlertKind, AlertRule, Candidate, GroupFigures
from meterd.domain.calls import Dimensions
from meterd.domain.clock import utc_now
from meterd.domain.errors import AlreadyExists, MeterError, NotFound
from meterd.domain.keys import ApiKey, Principal, new_key
from meterd.domain.limits import Limit, LimitAction, StoredLimit, Usage
from meterd.domain.price_versions import CatalogDiff, CatalogImport, StoredPrice, same_rates, version_key
from meterd.domain.pricing import Price
from meterd.domain.quota import (
    CheckItem,
    CheckOutcome,
    CounterReading,
    Estimate,
    Extended,
    ReservationState,
    ReservedCounter,
    blocks,
    denies,
    limit_state,
)
from meterd.domain.records import (
    CounterKey,
    EndedReservation,
    HeldCharge,
    Recorded,
    RecordedCounter,
    RecordItem,
    RecordResult,
    counter_deltas,
    plan_record,
)
from meterd.domain.windows import WindowKind, sliding_used, window_start

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass
class FakeReservation:
    tenant_id: str
    id: str
    dims: Dimensions
    state: ReservationState
    estimate_json: dict
    charges: list[HeldCharge]
    cost_nanos: int
    expires_at: dt.datetime


@dataclasses.dataclass
class _Counter:
    used: int = 0
    reserved: int = 0


class FakeState:
    """What the fakes share, as the stores share one database: counters and reservations."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.counters: dict[CounterKey, _Counter] = {}
        self.reservations: dict[tuple[str, str], FakeReservation] = {}

    def counter(self, key: CounterKey) -> _Counter:
        return self.counters.setdefault(key, _Counter())

    def reading(self, key: CounterKey, sliding_seconds: int | None = None) -> CounterReading:
        c = self.counters.get(key, _Counter())
        prev = _Counter()
        if sliding_seconds is not None:
            prev = self.counters.get((*key[:4], key[4] - dt.timedelta(seconds=sliding_seconds)), _Counter())
        return CounterReading(key[4], c.used, c.reserved, prev.used, prev.reserved)


def _sliding(limit: Limit) -> int | None:
    return limit.window.seconds if limit.window.kind is WindowKind.SLIDING else None


class FakeQuotaStore:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def check(self, items: list[CheckItem], at: dt.datetime | None) -> list[CheckOutcome]:
        now = at or self.state.clock()
        out = []
        for item in items:
            keys = [
                (item.tenant_id, c.limit.id, c.limit.generation, c.partition, window_start(c.limit.window, now))
                for c in item.charges
            ]
            existing = (
                item.reserve
                and item.client_reservation_id
                and (item.tenant_id, item.reservation_id) in (self.state.reservations)
            )
            allowed = existing or not any(
                blocks(c, limit_state(c, self.state.reading(k, _sliding(c.limit)), now, denied=False))
                for c, k in zip(item.charges, keys, strict=True)
            )
            expires = None
            if existing:
                expires = self.state.reservations[(item.tenant_id, item.reservation_id)].expires_at
            elif allowed and item.reserve:
                expires = now + item.ttl
                for c, k in zip(item.charges, keys, strict=True):
                    self.state.counter(k).reserved += c.amount
                self.state.reservations[(item.tenant_id, item.reservation_id)] = FakeReservation(
                    item.tenant_id, item.reservation_id, item.dims, ReservationState.ACTIVE, item.estimate.to_json(),
                    [HeldCharge(c.limit.id, c.limit.generation, c.partition, k[4], c.limit.metric, c.amount)
                     for c, k in zip(item.charges, keys, strict=True)],
                    item.cost_nanos, expires,
                )  # fmt: skip
            readings = [self.state.reading(k, _sliding(c.limit)) for c, k in zip(item.charges, keys, strict=True)]
            # Like meter_check: the previous bucket as one figure (its used + reserved).
            readings = [
                dataclasses.replace(r, prev_used=r.prev_used + r.prev_reserved, prev_reserved=0) for r in readings
            ]
            out.append(CheckOutcome(allowed, bool(existing), now, expires, readings))
        return out

    async def extend(
        self,
        *,
        tenant_id: str,
        at: dt.datetime | None,
        reservation_id: str,
        amounts: Usage,
        ttl: dt.timedelta,
        limits: list[Limit],
    ) -> Extended:
        now = at or self.state.clock()
        r = self.state.reservations.get((tenant_id, reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return Extended(False, False, None, 0, [])
        by_id = {limit.id: limit for limit in limits}
        deny = {limit.id for limit in limits if limit.action is LimitAction.DENY}
        ok = True
        for held in r.charges:
            amount = amounts.amount_for(held.metric)
            limit = by_id.get(held.limit_id)
            if held.limit_id in deny and amount > 0 and limit is not None:
                reading = self.state.reading(held.key(tenant_id), _sliding(limit))
                used = reading.used
                if limit.window.kind is WindowKind.SLIDING:
                    used = sliding_used(used, reading.prev_used + reading.prev_reserved, limit.window, now)
                # meter_extend denies only a positive amount (an extension of nothing always fits).
                ok = ok and not denies(used + reading.reserved, amount, limit.max)
        if ok:
            grown = []
            for held in r.charges:
                amount = amounts.amount_for(held.metric)
                self.state.counter(held.key(tenant_id)).reserved += amount
                grown.append(dataclasses.replace(held, amount=held.amount + amount))
            r.charges = grown
            r.expires_at = max(r.expires_at, now + ttl)
            r.cost_nanos += amounts.cost_nanos
        counters = [
            ReservedCounter(held.limit_id, held.partition,
                            self.state.reading(held.key(tenant_id), _sliding(by_id[held.limit_id])
                                               if held.limit_id in by_id else None))
            for held in r.charges
        ]  # fmt: skip
        return Extended(True, ok, r.expires_at, r.cost_nanos, counters)

    def _give_back(self, r: FakeReservation, state: ReservationState) -> None:
        r.state = state
        for held in r.charges:
            self.state.counter(held.key(r.tenant_id)).reserved -= held.amount

    async def release(self, tenant_id: str, reservation_id: str, at: dt.datetime | None) -> bool:
        r = self.state.reservations.get((tenant_id, reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return False
        self._give_back(r, ReservationState.RELEASED)
        return True

    async def expire(self, at: dt.datetime | None, batch: int = 1000) -> int:
        now = at or self.state.clock()
        due = [
            r for r in self.state.reservations.values() if r.state is ReservationState.ACTIVE and r.expires_at <= now
        ]
        for r in sorted(due, key=lambda r: r.expires_at)[:batch]:
            self._give_back(r, ReservationState.EXPIRED)
        return min(len(due), batch)

    async def reservation_dims(self, tenant_id: str, reservation_id: str) -> Dimensions | None:
        r = self.state.reservations.get((tenant_id, reservation_id))
        return r.dims if r else None

    async def reservation_state(self, tenant_id: str, reservation_id: str) -> ReservationState | None:
        r = self.state.reservations.get((tenant_id, reservation_id))
        return r.state if r else None


@dataclasses.dataclass
class _FirstAnswer:
    fingerprint: bytes
    result: RecordResult


class FakeRecordStore:
    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.calls: dict[tuple[str, str], _FirstAnswer] = {}
        self.stored: list[tuple[str, object]] = []  # (tenant, CallInput as stored), in order

    async def record_batch(self, items: list[RecordItem]) -> list[Recorded | MeterError]:
        out: list[Recorded | MeterError] = []
        for item in items:
            key = (item.tenant_id, item.call.call_id)
            first = self.calls.get(key)
            if first is not None:
                if first.fingerprint != item.call.fingerprint():
                    out.append(
                        AlreadyExists(f"call_id {item.call.call_id!r} was already recorded with different content")
                    )
                else:
                    out.append(Recorded(dataclasses.replace(first.result, duplicate=True), False, []))
                continue
            recorded_at = self.state.clock()
            occurred_at = item.call.occurred_at or item.at or recorded_at
            deltas = counter_deltas()
            plan = plan_record(item, occurred_at, self._end(item), deltas)
            for k, d in deltas.items():
                counter = self.state.counter(k)
                counter.used += d.used
                counter.reserved += d.reserved
            result = RecordResult(item.call.call_id, False, plan.cost_nanos, item.cost_source, item.price_id,
                                  recorded_at, plan.cost_parts)  # fmt: skip
            self.calls[key] = _FirstAnswer(item.call.fingerprint(), result)
            self.stored.append((item.tenant_id, plan.stored))
            counters = [
                RecordedCounter(c.limit, c.partition, c.amount, self.state.reading(c.key)) for c in plan.charged
            ]
            out.append(Recorded(result, plan.settled, counters))
        return out

    def _end(self, item: RecordItem) -> EndedReservation | None:
        if not item.call.reservation_id:
            return None
        r = self.state.reservations.get((item.tenant_id, item.call.reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return None
        d = item.call.dims
        same = (r.dims.subject, r.dims.provider, r.dims.model, r.dims.operation) == (
            d.subject, d.provider, d.model, d.operation,
        )  # fmt: skip
        r.state = ReservationState.SETTLED if same else ReservationState.RELEASED
        estimate = Estimate(**{k: v for k, v in r.estimate_json.items() if k in Estimate.__dataclass_fields__})
        return EndedReservation(item.call.call_id, same, estimate, tuple(r.charges), r.cost_nanos)


_COUNTED = ("metric", "window", "partition")  # changing these starts new counters


class FakeLimitStore:
    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.limits: dict[tuple[str, str], StoredLimit] = {}

    async def set(self, tenant_id: str, limit: Limit) -> tuple[StoredLimit, bool]:
        now = self.clock()
        old = self.limits.get((tenant_id, limit.id))
        if old is None:
            stored = StoredLimit(dataclasses.replace(limit, generation=1), now, now)
        else:
            changed = any(getattr(old.limit, f) != getattr(limit, f) for f in _COUNTED)
            generation = old.limit.generation + (1 if changed else 0)
            stored = StoredLimit(dataclasses.replace(limit, generation=generation), old.created_at, now)
        self.limits[(tenant_id, limit.id)] = stored
        return stored, old is None

    async def get(self, tenant_id: str, limit_id: str) -> StoredLimit:
        if (stored := self.limits.get((tenant_id, limit_id))) is None:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")
        return stored

    async def list(self, tenant_id: str) -> list[StoredLimit]:
        return [s for (t, _), s in sorted(self.limits.items()) if t == tenant_id]

    async def delete(self, tenant_id: str, limit_id: str) -> None:
        if self.limits.pop((tenant_id, limit_id), None) is None:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")


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

    async def set_rule(self, tenant_id: str, rule: AlertRule) -> tuple[StoredRule, bool]:
        now = self.clock()
        old = self.rules.get((tenant_id, rule.id))
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
