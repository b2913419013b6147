"""Price versions: the bundled catalog (tenant '') and each tenant's own prices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meterd.domain.errors import AlreadyExists
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

    async def versions(self, tenant_id: str) -> list[StoredPrice]:
        """Every version of the tenant's own prices and of the shared catalog, with when each was added."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT tenant_id, {_COLUMNS}, created_at FROM prices WHERE tenant_id IN (%s, %s)
                     ORDER BY tenant_id = %s, provider, lower(model_pattern), effective_from, id""",
                (tenant_id, CATALOG_TENANT, CATALOG_TENANT),
            )
            rows = await cur.fetchall()
        return [StoredPrice(_price(r), r["tenant_id"] == CATALOG_TENANT, r["created_at"]) for r in rows]

    async def add_versions(self, tenant_id: str, prices: list[Price]) -> tuple[list[StoredPrice], int]:
        """Insert price versions all or nothing; returns (added, skipped).

        A version whose (provider, pattern case-insensitively, effective_from) is already stored with
        the same rates is skipped (the note is not compared). With different rates nothing is added
        and AlreadyExists names it: versions are immutable, a change is a later version. Writers of
        one tenant's prices are serialised, so two of them cannot add the same version twice.
        """
        async with self.db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('meter_prices/' || %s, 0))", (tenant_id,))
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM prices WHERE tenant_id = %s", (tenant_id,))
            existing = {_version_key(p): p for p in map(_price, await cur.fetchall())}
            new: list[Price] = []
            conflicts: list[str] = []
            for p in prices:
                old = existing.get(_version_key(p))
                if old is None:
                    new.append(p)
                elif not same_rates(old, p):
                    conflicts.append(
                        f"{p.provider} {p.model_pattern!r} from {p.effective_from.isoformat()} (stored as {old.price_id})"
                    )
            if conflicts:
                raise AlreadyExists(
                    "price versions are immutable and these exist with different rates: "
                    + "; ".join(conflicts[:10])
                    + (f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else "")
                    + "; add a version with a later effective_from instead"
                )
            added: list[StoredPrice] = []
            if new:
                cur = conn.cursor()
                await cur.executemany(
                    f"""INSERT INTO prices (tenant_id, provider, model_pattern, effective_from, input_nanos_per_mtok,
                            output_nanos_per_mtok, cached_read_nanos_per_mtok, cache_write_nanos_per_mtok,
                            request_nanos, unit_nanos, note)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                        ON CONFLICT (tenant_id, provider, model_pattern, effective_from) DO NOTHING
                        RETURNING {_COLUMNS}, created_at""",
                    [
                        (
                            tenant_id, p.provider, p.model_pattern, p.effective_from, p.input_per_mtok,
                            p.output_per_mtok, p.cached_read_per_mtok, p.cache_write_per_mtok, p.per_request,
                            p.per_unit, p.note,
                        )
                        for p in new
                    ],
                    returning=True,
                )  # fmt: skip
                while True:
                    row = await cur.fetchone()
                    if row is not None:  # None: added meanwhile by a writer not taking the lock (catalog seeding)
                        added.append(StoredPrice(_price(row), tenant_id == CATALOG_TENANT, row["created_at"]))
                    if not cur.nextset():
                        break
        return added, len(prices) - len(added)


@dataclass(frozen=True)
class StoredPrice:
    price: Price
    shared: bool  # a row of the shared catalog, not the tenant's own
    created_at: datetime


def _version_key(p: Price) -> tuple[str, str, datetime]:
    return p.provider.casefold(), p.model_pattern.casefold(), p.effective_from


_RATES = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_read_per_mtok",
    "cache_write_per_mtok",
    "per_request",
    "per_unit",
)


def same_rates(a: Price, b: Price) -> bool:
    """Same figures (the version key is compared by the caller; notes and ids are not compared)."""
    return all(getattr(a, name) == getattr(b, name) for name in _RATES)
