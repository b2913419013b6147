"""The price in force for a call: the tenant's own prices first, then the shared catalog."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from fnmatch import fnmatchcase

from meterd.domain import genai_catalog
from meterd.domain.errors import AlreadyExists, InvalidArgument
from meterd.domain.price_rules import CatalogProvider, PriceSet, compiled
from meterd.domain.price_versions import (  # noqa: F401 - MAX_LOAD, PRICE_RATE_FIELDS, validate_price: re-exported
    CATALOG_TENANT,
    MAX_LOAD,
    PRICE_RATE_FIELDS,
    CatalogDiff,
    CatalogImport,
    StoredPrice,
    same_rates,
    validate_price,
)
from meterd.domain.pricing import CostBreakdown, Price, UsageAmounts, breakdown, choose
from meterd.service.ports import PricePort

Progress = Callable[[int, int | None], None]  # (done, total or None): a CLI's progress bar

log = logging.getLogger(__name__)


class PriceBook:
    """Prices for the record path: the shared catalog loaded once, each tenant's own prices, and
    each (tenant, provider, model)'s candidate versions remembered (matching over thousands of
    rules is done once per model name, not per call)."""

    def __init__(self, store: PricePort, *, max_age: float = 30.0) -> None:
        self.store = store
        self.max_age = max_age
        self._shared: tuple[PriceSet, tuple[CatalogProvider, ...], float] | None = None
        self._own: dict[str, tuple[PriceSet, float]] = {}
        self._candidates: dict[tuple[str, str, str], tuple[list[Price], list[Price]]] = {}
        # (tenant, provider, model, tier) -> (chosen price, in force over [since, until)): between two
        # candidates' effective_from the choice cannot change, so a call inside the span skips choose().
        self._chosen: dict[tuple[str, str, str, str], tuple[Price | None, dt.datetime | None, dt.datetime | None]] = {}
        self._loading = asyncio.Lock()
        self._shared_stamp: object = ()  # opaque: compared with the store's next stamp

    async def seed_catalog(self) -> None:
        """Import the installed genai-prices catalog when none was ever imported (a new database, or
        one upgraded from the hand-kept catalog). Every replica may try: the import is serialised."""
        conversion = genai_catalog.installed()
        diff = await self.store.sync_catalog(
            conversion.prices, source=genai_catalog.SOURCE_NAME, version=conversion.version,
            providers=conversion.providers, summary=conversion.summary(), only_if_never_imported=True,
        )  # fmt: skip
        if diff is not None:
            log.info("imported the shared price catalog: %s", conversion.summary())
            self.invalidate()
            return
        latest = await self.store.latest_import()
        if latest is not None and latest.version != conversion.version:
            log.warning(
                "the shared price catalog is %s %s but %s is installed: run `meter prices sync` to import it",
                latest.source, latest.version, conversion.version,
            )  # fmt: skip

    def _fresh(self, tenant_id: str) -> tuple[PriceSet, PriceSet] | None:
        now = time.monotonic()
        shared, own = self._shared, self._own.get(tenant_id)
        if shared is None or now - shared[2] > self.max_age or own is None or now - own[1] > self.max_age:
            return None
        return own[0], shared[0]

    async def _sets(self, tenant_id: str) -> tuple[PriceSet, PriceSet]:
        if (sets := self._fresh(tenant_id)) is not None:
            return sets
        # One load at a time: hundreds of concurrent first calls must not each read the catalog.
        async with self._loading:
            if (sets := self._fresh(tenant_id)) is not None:
                return sets
            now = time.monotonic()
            if self._shared is None or now - self._shared[2] > self.max_age:
                stamp = await self.store.shared_stamp()
                if self._shared is not None and stamp == self._shared_stamp:
                    self._shared = (*self._shared[:2], now)
                else:
                    shared, latest = await self.store.shared()
                    providers = latest.providers if latest else ()
                    self._shared, self._shared_stamp = (PriceSet(shared, providers), providers, now), stamp
                    self._candidates.clear()
                    self._chosen.clear()
            entry = self._own.get(tenant_id)
            if entry is None or now - entry[1] > self.max_age:
                entry = (PriceSet(await self.store.own(tenant_id), self._shared[1]), now)
                self._own[tenant_id] = entry
                self._forget_candidates(tenant_id)
            return entry[0], self._shared[0]

    async def lookup(
        self, tenant_id: str, provider: str, model: str, at: dt.datetime, service_tier: str = ""
    ) -> Price | None:
        own, shared = await self._sets(tenant_id)
        key = (tenant_id, provider, model)
        chosen = self._chosen.get((tenant_id, provider, model, service_tier))
        if chosen is not None and (chosen[1] is None or chosen[1] <= at) and (chosen[2] is None or at < chosen[2]):
            return chosen[0]
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = (own.candidates(provider, model), shared.candidates(provider, model))
            if len(self._candidates) > 100_000:
                self._candidates.clear()
                self._chosen.clear()
            self._candidates[key] = candidates
        price = choose(candidates[0], at, service_tier) or choose(candidates[1], at, service_tier)
        both = candidates[0] + candidates[1]
        if not any(p.daily_window for p in both):  # a time-of-day price changes within any span
            since = max((p.effective_from for p in both if p.effective_from <= at), default=None)
            until = min((p.effective_from for p in both if p.effective_from > at), default=None)
            if len(self._chosen) > 100_000:
                self._chosen.clear()
            self._chosen[(tenant_id, provider, model, service_tier)] = (price, since, until)
        return price

    async def model_names(self, tenant_id: str, provider: str) -> list[str]:
        """Every model the tenant's prices or the shared catalog name exactly (no glob) for a
        provider, sorted: the candidates GetRecommendations prices the same usage on."""
        names: set[str] = set()
        for prices in await self._sets(tenant_id):
            names.update(p.model_pattern for p in prices.globs if p.is_exact and p.provider.casefold() == provider)
            names.update(model for prov, model in prices.by_model if prov.casefold() == provider)
        return sorted(names)

    async def cost(
        self, tenant_id: str, provider: str, model: str, at: dt.datetime, amounts: UsageAmounts, service_tier: str = ""
    ) -> tuple[CostBreakdown, Price | None]:
        """(cost in parts, the price used); (zero breakdown, None) when the model has no price."""
        price = await self.lookup(tenant_id, provider, model, at, service_tier)
        return (CostBreakdown(), None) if price is None else (breakdown(price, amounts), price)

    def _forget_candidates(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            self._candidates.clear()
            self._chosen.clear()
        else:
            self._candidates = {k: v for k, v in self._candidates.items() if k[0] != tenant_id}
            self._chosen = {k: v for k, v in self._chosen.items() if k[0] != tenant_id}

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._own.clear()
            self._shared = None
        else:
            self._own.pop(tenant_id, None)
        self._forget_candidates(tenant_id)


class PriceAdmin:
    """Adding and listing price versions of a tenant (CATALOG_TENANT: the shared catalog, operators only)."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.store = book.store

    def _changed(self, tenant_id: str) -> None:
        # The shared catalog is part of every tenant's prices. Other replicas see a change within
        # their PriceBook.max_age.
        self.book.invalidate(None if tenant_id == CATALOG_TENANT else tenant_id)

    async def latest_import(self) -> CatalogImport | None:
        """The shared catalog's import in force (None: never imported)."""
        return await self.store.latest_import()

    async def set(self, tenant_id: str, price: Price) -> StoredPrice:
        """Add one version; AlreadyExists when its (provider, pattern, effective_from) is taken."""
        added, _ = await self.store.add_versions(tenant_id, [price])
        self._changed(tenant_id)
        if not added:  # the same version again: still immutable, so the caller learns it exists
            raise AlreadyExists(
                f"a price for {price.provider} {price.model_pattern!r} from {price.effective_from.isoformat()} "
                "already exists; price versions are immutable, add one with a later effective_from instead"
            )
        return added[0]

    async def load(
        self, tenant_id: str, prices: list[Price], *, include_default_catalog: bool = False
    ) -> tuple[int, int]:
        """Add many versions at once, all or nothing; returns (added, skipped). A version equal to a
        stored one (or to another of the same load) is skipped; a conflicting one fails the load."""
        given = len(prices)
        if include_default_catalog:
            prices = [*prices, *genai_catalog.installed().prices]
        unique: dict[tuple[str, str, str, str, dt.datetime], Price] = {}
        duplicates = 0
        conflicts: list[tuple[str, str]] = []
        for i, p in enumerate(prices):
            key = (p.provider, p.model_pattern.casefold(), p.service_tier, p.daily_window, p.effective_from)
            first = unique.get(key)
            if first is None:
                unique[key] = p
            elif same_rates(first, p):
                duplicates += 1
            else:
                field = f"prices[{i}]" if i < given else "include_default_catalog"
                conflicts.append((field, f"{p.provider} {p.model_pattern!r} from {p.effective_from.isoformat()} "
                                         "appears twice with different rates"))  # fmt: skip
        if conflicts:
            raise InvalidArgument(conflicts)
        added, skipped = await self.store.add_versions(tenant_id, list(unique.values()))
        self._changed(tenant_id)
        return len(added), skipped + duplicates

    async def list(
        self, tenant_id: str, *, provider: str = "", model: str = "", at: dt.datetime | None = None
    ) -> list[StoredPrice]:
        """The tenant's own versions, then the shared catalog's (filtered).

        model: versions whose pattern matches the model. at: per (provider, pattern) only the version
        in force at that time, the tenant's own when it has one in force, else the catalog's.
        """
        rows = await self.store.versions(tenant_id)
        provider = provider.strip().casefold()
        if provider:
            rows = [r for r in rows if r.price.provider.casefold() == provider]
        if model:
            rows = [r for r in rows if _lists_for(r.price, model.casefold())]
        if at is None:
            return rows
        in_force: dict[tuple[str, str, str, str], StoredPrice] = {}
        for r in rows:
            if r.price.effective_from > at:
                continue
            key = (r.price.provider.casefold(), r.price.model_pattern.casefold(), r.price.service_tier,
                   r.price.daily_window)  # fmt: skip
            best = in_force.get(key)
            # Own rows beat shared ones; within one side the latest effective_from wins.
            if best is None or (not r.shared, r.price.effective_from) > (not best.shared, best.price.effective_from):
                in_force[key] = r
        chosen = {id(r) for r in in_force.values()}
        return [r for r in rows if id(r) in chosen]

    async def sync(
        self, conversion: genai_catalog.Conversion, *, dry_run: bool = False, progress: Progress | None = None
    ) -> CatalogDiff:
        """Make the shared catalog the converted source data (see PriceStore.sync_catalog)."""
        diff = await self.store.sync_catalog(
            conversion.prices, source=genai_catalog.SOURCE_NAME, version=conversion.version,
            providers=conversion.providers, summary=conversion.summary(), dry_run=dry_run, progress=progress,
        )  # fmt: skip
        assert diff is not None
        if not dry_run:
            self._changed(CATALOG_TENANT)
        return diff


def _lists_for(price: Price, model: str) -> bool:
    """Whether a version is listed for `model`: its source rule matches, or its glob does."""
    if price.match_rule:
        return compiled(price.match_rule)(model)
    return fnmatchcase(model, price.model_pattern.casefold())
