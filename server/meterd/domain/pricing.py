"""Pricing domain: price versions, exact integer cost, price selection, catalog loading.

Money is integer nano-USD (1 USD = 1_000_000_000 nanos) everywhere; floats never enter.
Token prices are nanos per million tokens; request and unit prices are nanos per request / unit.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from meterd.domain.bounds import INT64_MAX

NANOS_PER_USD = 1_000_000_000
TOKENS_PER_MTOK = 1_000_000

# Rates in Price; the catalog file uses the same names.
_TOKEN_RATES = ("input_per_mtok", "output_per_mtok", "cached_read_per_mtok", "cache_write_per_mtok")
_OTHER_RATES = ("per_request", "per_unit")
_USD_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
_WINDOW_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")


def _check_count(name: str, value: object) -> None:
    # bool is an int subclass; True as a price or a token count is always a bug.
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise ValueError(f"{name} must be an int in [0, 2**63-1], got {value!r}")


@dataclass(frozen=True)
class Price:
    """One version of a provider/model price, in force from `effective_from` until superseded.

    `model_pattern` is an exact model name or a glob using only `*` and `?` (no `[...]` sets).
    """

    provider: str
    model_pattern: str
    effective_from: datetime
    input_per_mtok: int
    output_per_mtok: int
    cached_read_per_mtok: int
    cache_write_per_mtok: int
    per_request: int
    per_unit: int
    note: str = ""
    price_id: str = ""  # assigned by storage; empty for prices not yet stored
    # Shared-catalog rows from genai-prices (see domain/genai_catalog.py); defaults for hand-set prices.
    service_tier: str = ""  # "" standard; else the caller's RecordCall.service_tier this version is for
    match_rule: str = ""  # JSON match rule of the source (price_rules); "" = model_pattern is a glob
    match_order: int = 0  # the model's position in its provider's list (first match wins)
    # Context-length tiers: (rate, start, nanos per Mtok); above `start` total input tokens (uncached,
    # cached-read and cache-write together) the whole call's tokens of that rate use the tier's figure.
    tiers: tuple[tuple[str, int, int], ...] = ()
    unit_kind: str = ""  # what RecordCall.usage.units counts for this model ("" = provider units)
    unit_divisor: int = 1  # per_unit is nanos per this many units (3,600 for a price per hour of seconds)
    source: str = ""  # e.g. "genai-prices 0.2.3"; "" for prices set by hand
    # "HH:MM:SS-HH:MM:SS" (UTC; may wrap past midnight): the version applies only to calls at those
    # times of day, where it beats the versions without a window (DeepSeek's peak/off-peak prices).
    daily_window: str = ""

    def __post_init__(self) -> None:
        if not self.provider.strip():
            raise ValueError("provider must not be empty")
        if not self.model_pattern.strip():
            raise ValueError("model_pattern must not be empty")
        if "[" in self.model_pattern or "]" in self.model_pattern:
            raise ValueError(f"model_pattern {self.model_pattern!r}: only '*' and '?' wildcards are allowed")
        if self.effective_from.utcoffset() is None:
            raise ValueError("effective_from must be timezone-aware")
        for name in _TOKEN_RATES + _OTHER_RATES:
            _check_count(name, getattr(self, name))
        for rate, start, value in self.tiers:
            if rate not in _TOKEN_RATES:
                raise ValueError(f"tier of unknown rate {rate!r}")
            _check_count("tier start", start)
            _check_count(f"tier {rate}", value)
        if self.daily_window and not _WINDOW_RE.fullmatch(self.daily_window):
            raise ValueError(f"daily_window must look like 00:30:00-16:30:00, got {self.daily_window!r}")
        if type(self.unit_divisor) is not int or not 1 <= self.unit_divisor <= 10**9:
            raise ValueError(f"unit_divisor must be an int in [1, 10**9], got {self.unit_divisor!r}")

    @property
    def is_exact(self) -> bool:
        # A source rule names its model exactly (its own id and aliases), like an exact pattern.
        return bool(self.match_rule) or not ("*" in self.model_pattern or "?" in self.model_pattern)

    @property
    def specificity(self) -> int:
        """Number of literal (non-wildcard) characters in the pattern."""
        return len(self.model_pattern) - self.model_pattern.count("*") - self.model_pattern.count("?")

    def matches(self, provider: str, model: str) -> bool:
        """Provider and model are both compared case-insensitively."""
        return self.provider.casefold() == provider.casefold() and fnmatchcase(
            model.casefold(), self.model_pattern.casefold()
        )


@dataclass(frozen=True)
class UsageAmounts:
    """Non-overlapping billable amounts of one call.

    input_tokens excludes cached-read and cache-write tokens; output_tokens includes reasoning tokens.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    units: int = 0

    def __post_init__(self) -> None:
        values = (self.input_tokens, self.output_tokens, self.cached_read_tokens, self.cache_write_tokens,
                  self.requests, self.units)  # fmt: skip
        # The common case in one test (bool is an int subclass: type() rejects it too).
        if all(type(v) is int and 0 <= v <= INT64_MAX for v in values):
            return
        for f in fields(self):
            _check_count(f.name, getattr(self, f.name))


@dataclass(frozen=True)
class CostBreakdown:
    """A cost in parts (nano-USD) that sum exactly to `total`, and what caching saved.

    `other` is cost not derived from a price: a client-supplied cost, or a reservation's estimate
    charged as it was. `cache_savings` is what the cached-read tokens would have cost at the
    uncached input rate minus what they cost (negative if cached reads cost more).
    """

    input: int = 0
    output: int = 0
    cached_read: int = 0
    cache_write: int = 0
    requests: int = 0
    units: int = 0
    other: int = 0
    cache_savings: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cached_read + self.cache_write + self.requests + self.units + self.other

    def as_tuple(self) -> tuple[int, ...]:
        """In PARTS order (the order of the stored `cost_parts` arrays)."""
        return tuple(getattr(self, name) for name in PARTS)

    @staticmethod
    def from_tuple(values: Iterable[int]) -> CostBreakdown:
        return CostBreakdown(*values)


PARTS = ("input", "output", "cached_read", "cache_write", "requests", "units", "other", "cache_savings")


def _round_half_up(numerator: int) -> int:
    # Floor division rounds towards -inf, so this is half up for negative numerators too.
    return (numerator + TOKENS_PER_MTOK // 2) // TOKENS_PER_MTOK


def token_rates(price: Price, usage: UsageAmounts) -> tuple[int, int, int, int]:
    """(input, output, cached_read, cache_write) nanos per Mtok for this call, tiers applied.

    A tier applies when the call's total input tokens exceed its start (the source's rule: the
    whole call's tokens of that rate pay the tier's figure, not only those above the start)."""
    rates = [price.input_per_mtok, price.output_per_mtok, price.cached_read_per_mtok, price.cache_write_per_mtok]
    if price.tiers:
        total_input = usage.input_tokens + usage.cached_read_tokens + usage.cache_write_tokens
        best = [-1] * 4
        for rate, start, value in price.tiers:
            i = _TOKEN_RATES.index(rate)
            if total_input > start and start > best[i]:
                best[i], rates[i] = start, value
    return rates[0], rates[1], rates[2], rates[3]


def _unit_part(numerator: int, divisor: int) -> int:
    return numerator if divisor == 1 else (numerator + divisor // 2) // divisor


def breakdown(price: Price, usage: UsageAmounts) -> CostBreakdown:
    """Exact cost of `usage` at `price`, in parts.

        tokens = input*input_rate + output*output_rate + cached_read*cached_read_rate
                 + cache_write*cache_write_rate                   (nanos per Mtok, tiers applied)
        total  = round_half_up(tokens / 1_000_000) + requests*per_request
                 + round_half_up(units*per_unit / unit_divisor)

    The token numerator is an exact integer, rounded once (half up) to a whole nano, so no rounding
    error accumulates per token kind. The four token parts are that rounded sum split by largest
    remainder (each part is its exact share rounded down; the nanos the rounding adds go to the
    parts with the largest fractions, ties in the order input, output, cached read, cache write),
    so the parts always add up to the total.
    """
    rates = token_rates(price, usage)
    counts = (usage.input_tokens, usage.output_tokens, usage.cached_read_tokens, usage.cache_write_tokens)
    numerators = [n * r for n, r in zip(counts, rates, strict=True)]
    token_nanos = _round_half_up(sum(numerators))
    parts = [n // TOKENS_PER_MTOK for n in numerators]
    extra = token_nanos - sum(parts)
    if extra:  # usually 0 or 1 nano; the sort (stable: ties in part order) only when there is one
        for i in sorted(range(4), key=lambda i: -(numerators[i] % TOKENS_PER_MTOK))[:extra]:
            parts[i] += 1
    return CostBreakdown(
        input=parts[0],
        output=parts[1],
        cached_read=parts[2],
        cache_write=parts[3],
        requests=usage.requests * price.per_request,
        units=_unit_part(usage.units * price.per_unit, price.unit_divisor),
        cache_savings=_round_half_up(usage.cached_read_tokens * (rates[0] - rates[2])),
    )


def cost_nanos(price: Price, usage: UsageAmounts) -> int:
    """Exact cost of `usage` at `price`, in nano-USD (the total of `breakdown`)."""
    return breakdown(price, usage).total


def select_price(prices: Iterable[Price], provider: str, model: str, at: datetime) -> Price | None:
    """The price in force for (provider, model) at `at` among glob/exact patterns, or None.

    Only prices of the same provider (case-insensitive) whose pattern matches the model
    (case-insensitive) and whose effective_from <= at are candidates; then `choose`.
    """
    return choose([p for p in prices if p.matches(provider, model)], at)


def choose(candidates: Iterable[Price], at: datetime, service_tier: str = "") -> Price | None:
    """The version in force at `at` among prices already known to match the call's model.

    Versions for the caller's service tier are preferred when one is in force; otherwise the
    standard ones (service_tier ""). The most specific pattern wins: an exact name (or a source
    rule) beats any glob; among globs, the one with the most literal characters (so a
    provider-wide "*" is the last resort); among equally specific patterns, the latest
    effective_from. A more specific pattern not in force yet does not hide an older, broader one.
    Remaining ties (same specificity and date) go to the lexicographically smallest pattern.
    """
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    in_force = [p for p in candidates if p.effective_from <= at]
    tier = [p for p in in_force if p.service_tier == service_tier] if service_tier else []
    pool = tier or [p for p in in_force if not p.service_tier]
    if any(p.daily_window for p in pool):
        now = at.astimezone(UTC).strftime("%H:%M:%S")
        windowed = [p for p in pool if p.daily_window and in_window(p.daily_window, now)]
        if windowed:
            return max(sorted(windowed, key=lambda p: p.model_pattern), key=lambda p: p.effective_from)
        pool = [p for p in pool if not p.daily_window]
    # Sorting by pattern first makes max() (which keeps the first maximum) break ties deterministically.
    pool.sort(key=lambda p: p.model_pattern)
    return max(pool, key=lambda p: (p.is_exact, p.specificity, p.effective_from), default=None)


def in_window(window: str, hhmmss: str) -> bool:
    """Whether a UTC time of day ("16:45:00") is in a daily window ("00:30:00-16:30:00"; end excluded)."""
    start, end = window.split("-")
    if end < start:  # wraps past midnight
        return hhmmss >= start or hhmmss < end
    return start <= hhmmss < end


def usd_to_nanos(text: str) -> int:
    """Exact conversion of a non-negative decimal USD string ("30.00", "0.000006") to nanos.

    Rejects signs, exponents, non-strings and anything finer than 1 nano (9 decimal places).
    """
    if not isinstance(text, str) or not _USD_RE.fullmatch(text):
        raise ValueError(f"expected a non-negative decimal USD string like '0.50', got {text!r}")
    nanos = Decimal(text) * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{text!r} has more precision than 1 nano-USD")
    value = int(nanos)
    if value > INT64_MAX:
        raise ValueError(f"{text!r} exceeds the int64 nano-USD range")
    return value


def nanos_to_usd(n: int) -> str:
    """Exact decimal USD string for `n` nanos, without trailing zeros (60_000_000 -> "0.06")."""
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), NANOS_PER_USD)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


# One rule for user-supplied prices (catalog files and `meter prices set`): input and output rates
# are required; a cache rate left out is the input rate (never $0, which would bill cache tokens for
# nothing); per_request and per_unit default to 0; note to "".
CACHE_RATES = ("cached_read_per_mtok", "cache_write_per_mtok")
_REQUIRED_KEYS = {"provider", "model", "effective_from", "input_per_mtok", "output_per_mtok"}
_OPTIONAL_KEYS = {"note", *CACHE_RATES, *_OTHER_RATES}


def missing_cache_rates(given) -> list[str]:
    """The cache rates absent from `given` (keys or a mapping with None for absent): they will be
    billed at the input rate, which callers tell the user about."""
    return [name for name in CACHE_RATES if name not in given or (isinstance(given, Mapping) and given[name] is None)]


def _effective_from(value: Any) -> datetime:
    # tomllib gives date for `2024-01-01` and datetime for `2024-01-01T00:00:00Z`; both are UTC.
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("effective_from needs a UTC offset (e.g. 2024-01-01T00:00:00Z) or a plain date")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise ValueError(f"effective_from must be a TOML date, got {value!r}")


def _parse_entry(entry: Any) -> Price:
    if not isinstance(entry, dict):
        raise ValueError("must be a table")
    keys = set(entry)
    if missing := _REQUIRED_KEYS - keys:
        raise ValueError(f"missing {sorted(missing)}")
    if unknown := keys - _REQUIRED_KEYS - _OPTIONAL_KEYS:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    for name in ("provider", "model", "note"):
        if not isinstance(entry.get(name, ""), str):
            raise ValueError(f"{name} must be a string")
    rates: dict[str, Any] = {}  # int nano-USD, spread into Price's rate fields below
    for name in _TOKEN_RATES + _OTHER_RATES:
        try:
            rates[name] = usd_to_nanos(entry.get(name, "0"))
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    for name in missing_cache_rates(keys):
        rates[name] = rates["input_per_mtok"]
    return Price(
        provider=entry["provider"].strip().lower(),
        model_pattern=entry["model"].strip(),
        effective_from=_effective_from(entry["effective_from"]),
        note=entry.get("note", ""),
        **rates,
    )


def parse_catalog(data: Mapping[str, Any]) -> list[Price]:
    """Validate a parsed catalog document (`{"price": [{...}, ...]}`) into prices.

    Each entry has provider, model (exact or glob), effective_from (date, or datetime with offset),
    input and output rates as decimal USD-per-million strings, and optional cache rates (default:
    the input rate), per_request / per_unit (decimal USD strings, default "0") and note. Any bad
    entry raises ValueError naming it.
    """
    if unknown := set(data) - {"price"}:
        raise ValueError(f"unknown top-level keys {sorted(unknown)}")
    entries = data.get("price", [])
    if not isinstance(entries, list):
        raise ValueError("'price' must be an array of tables ([[price]])")
    prices: list[Price] = []
    seen: set[tuple[str, str, datetime]] = set()
    for i, entry in enumerate(entries):
        label = f"price[{i}]"
        if isinstance(entry, dict):
            label += f" ({entry.get('provider')!s} {entry.get('model')!s})"
        try:
            price = _parse_entry(entry)
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
        key = (price.provider, price.model_pattern.casefold(), price.effective_from)
        if key in seen:
            raise ValueError(f"{label}: duplicate provider/model/effective_from")
        seen.add(key)
        prices.append(price)
    return prices


def load_catalog(path: str | Path) -> list[Price]:
    """Load and validate a TOML price file (the shared catalog itself comes from genai-prices)."""
    with open(path, "rb") as fh:
        return parse_catalog(tomllib.load(fh))
