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
        own, shared = entry[0]
        return select_price(own, provider, model, at) or select_price(shared, provider, model, at)

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)
