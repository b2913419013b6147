"""Price versions as the control plane handles them: validation of a new version, when two versions
have the same rates, and what the store keeps about each (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from meterd.domain.errors import InvalidArgument
from meterd.domain.price_rules import CatalogProvider
from meterd.domain.pricing import INT64_MAX, Price

CATALOG_TENANT = ""  # the tenant of the shared catalog's versions, which every tenant sees


@dataclass(frozen=True)
class CatalogImport:
    """One import of the shared catalog (the latest is the one in force)."""

    source: str
    version: str
    imported_at: dt.datetime
    providers: tuple[CatalogProvider, ...]
    summary: str


@dataclass
class CatalogDiff:
    added: list[Price] = dataclasses.field(default_factory=list)
    repriced: list[tuple[Price, Price]] = dataclasses.field(default_factory=list)  # (retired, new)
    removed: list[Price] = dataclasses.field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class StoredPrice:
    price: Price
    shared: bool  # a row of the shared catalog, not the tenant's own
    created_at: dt.datetime


def version_key(p: Price) -> tuple[str, str, str, str, dt.datetime]:
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


MAX_PRICE_NAME = 128  # provider, model_pattern
MAX_PRICE_NOTE = 1024
MAX_LOAD = 10_000
PRICE_RATE_FIELDS = (  # (proto field, Price attribute)
    ("input_nanos_per_mtok", "input_per_mtok"),
    ("output_nanos_per_mtok", "output_per_mtok"),
    ("cached_read_nanos_per_mtok", "cached_read_per_mtok"),
    ("cache_write_nanos_per_mtok", "cache_write_per_mtok"),
    ("request_nanos", "per_request"),
    ("unit_nanos", "per_unit"),
)


def validate_price(
    *,
    provider: str,
    model_pattern: str,
    effective_from: dt.datetime | None,
    rates: dict[str, int],
    note: str = "",
    prefix: str = "price",
    violations: list[tuple[str, str]] | None = None,
) -> Price | None:
    """A price version from raw fields (rates keyed by proto field name). Problems are appended to
    `violations` (field paths under `prefix`) and None returned; without a list InvalidArgument is raised."""
    found: list[tuple[str, str]] = []
    provider, model_pattern = provider.strip().lower(), model_pattern.strip()
    for field, name in (("provider", provider), ("model_pattern", model_pattern)):
        if not name:
            found.append((f"{prefix}.{field}", "required"))
        elif len(name) > MAX_PRICE_NAME:
            found.append((f"{prefix}.{field}", f"at most {MAX_PRICE_NAME} characters"))
    if "[" in model_pattern or "]" in model_pattern:
        found.append((f"{prefix}.model_pattern", "only the '*' and '?' wildcards are allowed (no [...] sets)"))
    if effective_from is None:
        found.append((f"{prefix}.effective_from", "required"))
    for field, _ in PRICE_RATE_FIELDS:
        value = rates.get(field, 0)
        if type(value) is not int or not 0 <= value <= INT64_MAX:
            found.append((f"{prefix}.{field}", "must be >= 0 (nano-USD)"))
    if len(note) > MAX_PRICE_NOTE:
        found.append((f"{prefix}.note", f"at most {MAX_PRICE_NOTE} characters"))
    if found or effective_from is None:
        if violations is None:
            raise InvalidArgument(found)
        violations.extend(found)
        return None
    r = {attr: rates.get(field, 0) for field, attr in PRICE_RATE_FIELDS}
    return Price(
        provider=provider,
        model_pattern=model_pattern,
        effective_from=effective_from.astimezone(dt.UTC),
        input_per_mtok=r["input_per_mtok"],
        output_per_mtok=r["output_per_mtok"],
        cached_read_per_mtok=r["cached_read_per_mtok"],
        cache_write_per_mtok=r["cache_write_per_mtok"],
        per_request=r["per_request"],
        per_unit=r["per_unit"],
        note=note,
    )
