"""Price versions: the bundled catalog (tenant '') and each tenant's own prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from psycopg.types.json import Jsonb

from meterd.domain.errors import AlreadyExists
from meterd.domain.price_rules import CatalogProvider
from meterd.domain.pricing import Price
from meterd.store.db import Database

_COLUMNS = """id, provider, model_pattern, effective_from, input_nanos_per_mtok, output_nanos_per_mtok,
              cached_read_nanos_per_mtok, cache_write_nanos_per_mtok, request_nanos, unit_nanos, note,
              service_tier, match_rule, match_order, tiers, unit_kind, unit_divisor, source, daily_window"""
_INSERT = """INSERT INTO prices (tenant_id, provider, model_pattern, effective_from, input_nanos_per_mtok,
                 output_nanos_per_mtok, cached_read_nanos_per_mtok, cache_write_nanos_per_mtok, request_nanos,
                 unit_nanos, note, service_tier, match_rule, match_order, tiers, unit_kind, unit_divisor, source,
                 daily_window)
             VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
             ON CONFLICT (tenant_id, provider, model_pattern, service_tier, daily_window, effective_from)
                WHERE retired_at IS NULL
             DO NOTHING"""
_ACTIVE = "retired_at IS NULL"

CATALOG_TENANT = ""  # rows shared by every tenant
SYNC_CHUNK = 500  # catalog versions inserted per statement batch: the unit of sync's progress


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
        service_tier=row["service_tier"],
        match_rule=row["match_rule"],
        match_order=row["match_order"],
        tiers=tuple((r, int(s), int(v)) for r, s, v in row["tiers"]),
        unit_kind=row["unit_kind"],
        unit_divisor=row["unit_divisor"],
        source=row["source"],
        daily_window=row["daily_window"],
    )


def _params(tenant_id: str, p: Price) -> tuple:
    return (
        tenant_id, p.provider, p.model_pattern, p.effective_from, p.input_per_mtok, p.output_per_mtok,
        p.cached_read_per_mtok, p.cache_write_per_mtok, p.per_request, p.per_unit, p.note, p.service_tier,
        p.match_rule, p.match_order, Jsonb([list(t) for t in p.tiers]), p.unit_kind, p.unit_divisor, p.source,
        p.daily_window,
    )  # fmt: skip


@dataclass(frozen=True)
class CatalogImport:
    """One import of the shared catalog (the latest is the one in force)."""

    source: str
    version: str
    imported_at: datetime
    providers: tuple[CatalogProvider, ...]
    summary: str


class PriceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def own(self, tenant_id: str) -> list[Price]:
        """The tenant's own price versions in force (none for the catalog tenant)."""
        if tenant_id == CATALOG_TENANT:
            return []
        async with self.db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM prices WHERE tenant_id = %s AND {_ACTIVE}", (tenant_id,))
            return [_price(r) for r in await cur.fetchall()]

    async def shared(self) -> tuple[list[Price], CatalogImport | None]:
        """The shared catalog's versions in force and its latest import (None: never imported)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM prices WHERE tenant_id = '' AND {_ACTIVE}")
            rows = await cur.fetchall()
            latest = await _latest_import(conn)
        return [_price(r) for r in rows], latest

    async def shared_stamp(self) -> tuple:
        """Changes whenever the shared catalog does (rows added or retired, an import recorded): lets
        replicas skip re-reading thousands of unchanged rows."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT count(*) FILTER (WHERE retired_at IS NULL) AS n, max(id) AS last, max(retired_at) AS retired,
                          (SELECT max(id) FROM price_catalog_imports WHERE tenant_id = '') AS import
                     FROM prices WHERE tenant_id = ''"""
            )
            row = await cur.fetchone()
        return row["n"], row["last"], row["retired"], row["import"]

    async def for_tenant(self, tenant_id: str) -> tuple[list[Price], list[Price], tuple[CatalogProvider, ...]]:
        """(the tenant's own prices, the shared catalog, the catalog's providers)."""
        shared, latest = await self.shared()
        return await self.own(tenant_id), shared, latest.providers if latest else ()

    async def latest_import(self) -> CatalogImport | None:
        async with self.db.connection() as conn:
            return await _latest_import(conn)

    async def versions(self, tenant_id: str) -> list[StoredPrice]:
        """Every version in force of the tenant's own prices and of the shared catalog, with when each was added."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT tenant_id, {_COLUMNS}, created_at FROM prices WHERE tenant_id IN (%s, %s) AND {_ACTIVE}
                     ORDER BY tenant_id = %s, provider, lower(model_pattern), service_tier, daily_window, effective_from, id""",
                (tenant_id, CATALOG_TENANT, CATALOG_TENANT),
            )
            rows = await cur.fetchall()
        return [StoredPrice(_price(r), r["tenant_id"] == CATALOG_TENANT, r["created_at"]) for r in rows]

    async def add_versions(self, tenant_id: str, prices: list[Price]) -> tuple[list[StoredPrice], int]:
        """Insert price versions all or nothing; returns (added, skipped).

        A version whose (provider, pattern case-insensitively, service tier, effective_from) is
        already in force with the same rates is skipped (the note is not compared). With different
        rates nothing is added and AlreadyExists names it: versions are immutable, a change is a
        later version. Writers of one tenant's prices are serialised, so two of them cannot add the
        same version twice.
        """
        async with self.db.transaction() as conn:
            await _lock(conn, tenant_id)
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM prices WHERE tenant_id = %s AND {_ACTIVE}", (tenant_id,))
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
            return await _insert(conn, tenant_id, new), len(prices) - len(new)

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
    ) -> CatalogDiff | None:
        """Make the shared catalog's imported rows (those with a source) equal `prices`, in one transaction.

        Unchanged versions stay (same ids); a version whose figures changed is retired and added
        anew; versions the new data lacks are retired (kept so old calls' price_id still resolves);
        rows added by hand (no source) are left alone. Records the import. dry_run: only the diff.
        only_if_never_imported: do nothing (None) when any import is recorded (start-up seeding).
        progress(versions written, versions to write) after each chunk of inserts.
        """  # fmt: skip
        async with self.db.transaction() as conn:
            await _lock(conn, CATALOG_TENANT)
            if only_if_never_imported and await _latest_import(conn) is not None:
                return None
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM prices WHERE tenant_id = '' AND {_ACTIVE} AND source <> ''"
            )
            old = {_version_key(p): p for p in map(_price, await cur.fetchall())}
            diff = CatalogDiff()
            wanted: dict[tuple, Price] = {}
            for p in prices:
                wanted.setdefault(_version_key(p), p)
            retire: list[int] = []
            add: list[Price] = []
            for key, p in wanted.items():
                before = old.get(key)
                if before is None:
                    diff.added.append(p)
                    add.append(p)
                elif not same_rates(before, p):
                    diff.repriced.append((before, p))
                    retire.append(int(before.price_id[1:]))
                    add.append(p)
                else:
                    diff.unchanged += 1
            for key, p in old.items():
                if key not in wanted:
                    diff.removed.append(p)
                    retire.append(int(p.price_id[1:]))
            if dry_run:  # nothing was written: the transaction only read
                return diff
            if retire:
                await conn.execute(
                    "UPDATE prices SET retired_at = now() WHERE tenant_id = '' AND id = ANY(%s)", (sorted(retire),)
                )
            for first in range(0, len(add), SYNC_CHUNK):
                await _insert(conn, CATALOG_TENANT, add[first : first + SYNC_CHUNK])
                if progress is not None:
                    progress(min(first + SYNC_CHUNK, len(add)), len(add))
            await conn.execute(
                "INSERT INTO price_catalog_imports (source, version, providers, summary) VALUES (%s, %s, %s, %s)",
                (source, version, Jsonb([p.to_json() for p in providers]), summary),
            )
            return diff


async def _lock(conn, tenant_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('meter_prices/' || %s, 0))", (tenant_id,))


async def _insert(conn, tenant_id: str, prices: list[Price]) -> list[StoredPrice]:
    added: list[StoredPrice] = []
    if not prices:
        return added
    cur = conn.cursor()
    await cur.executemany(
        f"{_INSERT} RETURNING {_COLUMNS}, created_at", [_params(tenant_id, p) for p in prices], returning=True
    )
    while True:
        row = await cur.fetchone()
        if row is not None:
            added.append(StoredPrice(_price(row), tenant_id == CATALOG_TENANT, row["created_at"]))
        if not cur.nextset():
            break
    return added


async def _latest_import(conn) -> CatalogImport | None:
    cur = await conn.execute(
        """SELECT source, version, imported_at, providers, summary FROM price_catalog_imports
            WHERE tenant_id = '' ORDER BY id DESC LIMIT 1"""
    )
    row = await cur.fetchone()
    if row is None:
        return None
    providers = tuple(CatalogProvider.from_json(p) for p in row["providers"])
    return CatalogImport(row["source"], row["version"], row["imported_at"], providers, row["summary"])


@dataclass
class CatalogDiff:
    added: list[Price] = field(default_factory=list)
    repriced: list[tuple[Price, Price]] = field(default_factory=list)  # (retired, new)
    removed: list[Price] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class StoredPrice:
    price: Price
    shared: bool  # a row of the shared catalog, not the tenant's own
    created_at: datetime


def _version_key(p: Price) -> tuple[str, str, str, str, datetime]:
    return p.provider.casefold(), p.model_pattern.casefold(), p.service_tier, p.daily_window, p.effective_from


_RATES = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_read_per_mtok",
    "cache_write_per_mtok",
    "per_request",
    "per_unit",
    "tiers",
    "unit_kind",
    "unit_divisor",
    "match_rule",
    "match_order",
)


def same_rates(a: Price, b: Price) -> bool:
    """Same figures (the version key is compared by the caller; notes and ids are not compared)."""
    return all(getattr(a, name) == getattr(b, name) for name in _RATES)
