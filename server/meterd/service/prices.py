"""The price in force for a call: the tenant's own prices first, then the shared catalog."""

from __future__ import annotations

import datetime as dt
import logging
import time

from meterd.domain.pricing import Price, load_catalog, select_price
from meterd.store.prices import CATALOG_TENANT, PriceStore

log = logging.getLogger(__name__)


class PriceBook:
    def __init__(self, store: PriceStore, *, max_age: float = 30.0) -> None:
        self.store = store
        self.max_age = max_age
        self._entries: dict[str, tuple[tuple[list[Price], list[Price]], float]] = {}
        # Glob matching over the whole catalog per call is costly: remember each model's candidates.
        self._candidates: dict[tuple[str, str, str], tuple[list[Price], list[Price]]] = {}

    async def seed_default_catalog(self) -> None:
        """Load the bundled catalog into an empty database (every replica may try: inserts are idempotent)."""
        if await self.store.catalog_is_empty():
            added = await self.store.add(CATALOG_TENANT, load_catalog())
            log.info("loaded %d prices from the bundled catalog", added)

    async def lookup(self, tenant_id: str, provider: str, model: str, at: dt.datetime) -> Price | None:
        entry = self._entries.get(tenant_id)
        if entry is None or time.monotonic() - entry[1] > self.max_age:
            entry = (await self.store.for_tenant(tenant_id), time.monotonic())
            self._entries[tenant_id] = entry
            self._forget_candidates(tenant_id)
        key = (tenant_id, provider, model)
        candidates = self._candidates.get(key)
        if candidates is None:
            own, shared = entry[0]
            candidates = (
                [p for p in own if p.matches(provider, model)],
                [p for p in shared if p.matches(provider, model)],
            )
            if len(self._candidates) > 100_000:
                self._candidates.clear()
            self._candidates[key] = candidates
        own, shared = candidates
        return select_price(own, provider, model, at) or select_price(shared, provider, model, at)

    def _forget_candidates(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            self._candidates.clear()
        else:
            self._candidates = {k: v for k, v in self._candidates.items() if k[0] != tenant_id}

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)
        self._forget_candidates(tenant_id)
