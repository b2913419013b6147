"""Price versions: the bundled catalog (tenant '') and each tenant's own prices."""

from __future__ import annotations

from meterd.domain.pricing import Price
from meterd.store.db import Database

_COLUMNS = """id, provider, model_pattern, effective_from, input_nanos_per_mtok, output_nanos_per_mtok,
              cached_read_nanos_per_mtok, cache_write_nanos_per_mtok, request_nanos, unit_nanos, note"""

CATALOG_TENANT = ""  # rows shared by every tenant


def _price(row: dict) -> Price:
    return Price(
        provider=row["provider"],
        model_pattern=row["model_pattern"],
        effective_from=row["effective_from"],
        input_per_mtok=row["input_nanos_per_mtok"],
        output_per_mtok=row["output_nanos_per_mtok"],
        cached_read_per_mtok=row["cached_read_nanos_per_mtok"],
        cache_write_per_mtok=row["cache_write_nanos_per_mtok"],
        per_request=row["request_nanos"],
        per_unit=row["unit_nanos"],
        note=row["note"],
        price_id=f"p{row['id']}",
    )


class PriceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_tenant(self, tenant_id: str) -> tuple[list[Price], list[Price]]:
        """(the tenant's own prices, the shared catalog)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT tenant_id, {_COLUMNS} FROM prices WHERE tenant_id IN (%s, %s)", (tenant_id, CATALOG_TENANT)
            )
            rows = await cur.fetchall()
        own = [_price(r) for r in rows if r["tenant_id"] == tenant_id and tenant_id != CATALOG_TENANT]
        shared = [_price(r) for r in rows if r["tenant_id"] == CATALOG_TENANT]
        return own, shared

    async def add(self, tenant_id: str, prices: list[Price]) -> int:
        """Insert price versions; an identical (provider, pattern, effective_from) is skipped. Returns added."""
        async with self.db.transaction() as conn:
            cur = conn.cursor()
            await cur.executemany(
                """INSERT INTO prices (tenant_id, provider, model_pattern, effective_from, input_nanos_per_mtok,
                       output_nanos_per_mtok, cached_read_nanos_per_mtok, cache_write_nanos_per_mtok,
                       request_nanos, unit_nanos, note)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (tenant_id, provider, model_pattern, effective_from) DO NOTHING""",
                [
                    (
                        tenant_id, p.provider, p.model_pattern, p.effective_from, p.input_per_mtok, p.output_per_mtok,
                        p.cached_read_per_mtok, p.cache_write_per_mtok, p.per_request, p.per_unit, p.note,
                    )
                    for p in prices
                ],
            )  # fmt: skip
            return cur.rowcount if cur.rowcount >= 0 else 0

    async def catalog_is_empty(self) -> bool:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT NOT EXISTS (SELECT 1 FROM prices WHERE tenant_id = '') AS empty")
            return (await cur.fetchone())["empty"]
