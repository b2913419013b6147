"""The ports between the services and storage: one typed protocol per aggregate.

Each takes and returns domain types (domain/), never rows, connections or psycopg exceptions: the
store raises MeterErrors (NotFound, AlreadyExists, Unavailable...) or domain.errors.RolledBack /
RejectedContent / StoreFailure. The classes of store/ implement them (structurally, checked by
mypy where app.py wires them), and server/meterd/service/fakes.py has in-memory ones for fast
tests; tests/service/test_contract.py runs the same cases against both.

Usage is three ports: UsagePort (GetUsage's read), CallSearchPort (ListCalls) and DimensionPort
(declared label dimensions and their rollups).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from meterd.domain.alert_records import DeliveryDue, DenialKey, StoredRule, TenantRule, WebhookDue
from meterd.domain.alerts import Alert, AlertFilter, AlertKind, AlertRule, Candidate, GroupFigures
from meterd.domain.call_search import CallSearchQuery
from meterd.domain.calls import Dimensions
from meterd.domain.dimensions import LabelDimension
from meterd.domain.equivalences import ModelEquivalence
from meterd.domain.errors import MeterError
from meterd.domain.keys import ApiKey, Principal
from meterd.domain.limits import Limit, StoredLimit, Usage
from meterd.domain.price_rules import CatalogProvider
from meterd.domain.price_versions import CatalogDiff, CatalogImport, StoredPrice
from meterd.domain.pricing import Price
from meterd.domain.projection import ProjectionWindow
from meterd.domain.quota import CheckItem, CheckOutcome, CounterReading, Extended, ReservationState
from meterd.domain.records import CounterKey, HourlyKey, Recorded, RecordItem
from meterd.domain.repricing import LabelCallKey, NewCost, SettledCharge, StoredCall
from meterd.domain.usage import UsageQuery
from meterd.domain.usage_results import CallRow, UsageData


class QuotaPort(Protocol):
    """Counters and reservations. `at` None: the database's clock (one clock for every replica)."""

    async def check(self, items: list[CheckItem], at: dt.datetime | None) -> list[CheckOutcome]:
        """Evaluate a batch in order, atomically: each request all or nothing against the counters
        as the earlier ones left them (the deny rule: domain.quota.blocks)."""
        ...

    async def extend(
        self,
        *,
        tenant_id: str,
        at: dt.datetime | None,
        reservation_id: str,
        amounts: Usage,
        ttl: dt.timedelta,
        limits: list[Limit],
    ) -> Extended: ...

    async def release(self, tenant_id: str, reservation_id: str, at: dt.datetime | None) -> bool: ...

    async def expire(self, at: dt.datetime | None, batch: int = 1000) -> int: ...

    async def reservation_dims(self, tenant_id: str, reservation_id: str) -> Dimensions | None: ...

    async def reservation_state(self, tenant_id: str, reservation_id: str) -> ReservationState | None: ...


class RecordPort(Protocol):
    async def record_batch(self, items: list[RecordItem]) -> list[Recorded | MeterError]:
        """Store new calls once each, settle or charge (domain.records.plan_record) and answer each
        item: new, duplicate with the first answer, or its own error (AlreadyExists)."""
        ...


class LimitPort(Protocol):
    async def set(self, tenant_id: str, limit: Limit) -> tuple[StoredLimit, bool]:
        """(stored, created)."""
        ...

    async def get(self, tenant_id: str, limit_id: str) -> StoredLimit: ...

    async def list(self, tenant_id: str) -> list[StoredLimit]: ...

    async def delete(self, tenant_id: str, limit_id: str) -> None: ...


class KeyPort(Protocol):
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
        """(the key, its secret: shown once)."""
        ...

    async def authenticate(self, full_key: str) -> Principal | None: ...

    async def mark_used(self, used: dict[str, dt.datetime]) -> None: ...

    async def list(self, tenant_id: str, include_revoked: bool = False) -> list[ApiKey]: ...

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey: ...


class PricePort(Protocol):
    async def own(self, tenant_id: str) -> list[Price]: ...

    async def shared(self) -> tuple[list[Price], CatalogImport | None]: ...

    async def for_tenant(self, tenant_id: str) -> tuple[list[Price], list[Price], tuple[CatalogProvider, ...]]:
        """(the tenant's own prices, the shared catalog, the catalog's providers)."""
        ...

    async def shared_stamp(self) -> object:
        """A value that changes whenever the shared catalog does (compared, never read)."""
        ...

    async def latest_import(self) -> CatalogImport | None: ...

    async def versions(self, tenant_id: str) -> list[StoredPrice]: ...

    async def add_versions(self, tenant_id: str, prices: list[Price]) -> tuple[list[StoredPrice], int]:
        """(added, skipped): all or nothing; AlreadyExists for a version stored with other rates."""
        ...

    async def sync_catalog(
        self,
        prices: list[Price],
        *,
        source: str,
        version: str,
        providers: list[CatalogProvider],
        summary: str,
        dry_run: bool = False,
        only_if_never_imported: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> CatalogDiff | None: ...


class AlertPort(Protocol):
    """Rules, alerts, the evaluator's reads, denial counts and legacy webhook deliveries."""

    async def set_rule(self, tenant_id: str, rule: AlertRule, keep_webhook_target: str = "") -> tuple[StoredRule, bool]:
        """Insert or replace. keep_webhook_target (a listed rule sent back: its webhook_target, no
        URL): keep the stored webhook, read under the row lock (domain.rule_secrets.keep_webhook)."""
        ...

    async def alert_exists(self, tenant_id: str, dedup_key: str) -> bool: ...

    async def list_rules(self, tenant_id: str) -> list[StoredRule]: ...

    async def enabled_rules(self, kinds: frozenset[AlertKind]) -> list[TenantRule]: ...

    async def delete_rule(self, tenant_id: str, rule_id: str) -> None: ...

    async def replay(self, f: AlertFilter, after_id: int, limit: int = 500) -> list[Alert]: ...

    async def raise_candidates(self, tenant_id: str, candidates: list[Candidate], at: dt.datetime | None) -> list[int]:
        """The ids of the alerts raised (dedup and cooldown decided atomically by the store)."""
        ...

    async def rollup_groups(
        self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime
    ) -> list[GroupFigures]: ...

    async def denials(self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime) -> int: ...

    async def expired_reservations(
        self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime
    ) -> int: ...

    async def add_denials(self, rows: dict[DenialKey, int]) -> None: ...

    async def claim_webhooks(self, lease: dt.timedelta, limit: int = 20) -> list[WebhookDue]: ...

    async def webhook_done(
        self, tenant_id: str, alert_id: int, *, ok: bool, error: str, retry_in: dt.timedelta | None
    ) -> None: ...


class DeliveryPort(Protocol):
    """Channel deliveries (Slack, email, PagerDuty...)."""

    async def claim(self, lease: dt.timedelta, limit: int = 20) -> list[DeliveryDue]: ...

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
    ) -> None: ...


class UsagePort(Protocol):
    async def usage(
        self,
        tenant_id: str,
        query: UsageQuery,
        start: dt.datetime,
        end: dt.datetime,
        projection: ProjectionWindow | None,
    ) -> UsageData:
        """Rows (grouped, ordered, limited), totals and projection sums over the answered [start, end),
        read in one snapshot; from rollups unless query.raw (domain.usage.UsageQuery)."""
        ...


class CallSearchPort(Protocol):
    async def search(self, tenant_id: str, query: CallSearchQuery) -> list[CallRow]:
        """At most page_size + 1 calls in the query's order after its cursor (domain.call_search)."""
        ...


class LimitCounterPort(Protocol):
    async def readings(self, tenant_id: str, wanted: list[tuple[Limit, str]], at: dt.datetime) -> list[CounterReading]:
        """Each (limit, partition)'s counter in the window holding `at`, read only (zeros if none)."""
        ...


class EquivalencePort(Protocol):
    """A tenant's model equivalence list (GetRecommendations' candidates)."""

    async def list(self, tenant_id: str) -> list[ModelEquivalence]: ...

    async def set(
        self, tenant_id: str, name: str, models: tuple[tuple[str, str], ...], max_groups: int
    ) -> tuple[ModelEquivalence, bool]: ...

    async def delete(self, tenant_id: str, name: str) -> None: ...


class DimensionPort(Protocol):
    """Declared label dimensions; their rollups are written by RecordPort with each call."""

    async def declared(self, tenant_id: str) -> dict[str, LabelDimension]: ...

    async def set(self, tenant_id: str, key: str, max_values_per_day: int) -> tuple[LabelDimension, bool]: ...

    async def delete(self, tenant_id: str, key: str) -> None: ...

    async def first_retained_call(self, tenant_id: str) -> dt.datetime | None: ...

    async def backfill_day(self, tenant_id: str, key: str, day: dt.datetime, max_values: int) -> None:
        """Recompute one UTC day of the key's rollups from the raw calls, atomically."""
        ...


class RepriceTransactionPort(Protocol):
    """One tenant's reprice inside one database transaction (RepricePort.transaction)."""

    tenant_id: str

    async def calls(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        provider: str,
        model: str,
        include_client_costs: bool,
        after: tuple[dt.datetime, str] | None,
        limit: int,
    ) -> list[StoredCall]:
        """The next `limit` calls with occurred_at in [start, end) after `after`, in key order."""
        ...

    async def settled_charges(self, calls: list[StoredCall]) -> dict[str, list[SettledCharge]]: ...

    async def update_calls(self, changes: list[NewCost]) -> None: ...

    async def add_to_counters(self, deltas: dict[CounterKey, int]) -> None: ...

    async def add_to_rollups(self, deltas: dict[HourlyKey, tuple[int, ...]]) -> None: ...

    async def add_to_label_rollups(self, deltas: dict[LabelCallKey, tuple[int, ...]]) -> None:
        """The same deltas by the calls' labels and error codes, for the label and error-code rollups."""
        ...


class RepricePort(Protocol):
    def transaction(self, tenant_id: str) -> AbstractAsyncContextManager[RepriceTransactionPort]:
        """One transaction; reprices of one tenant run one at a time."""
        ...
