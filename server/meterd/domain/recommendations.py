"""GetRecommendations, the pure parts (docs/recommendations.md): every figure is the recorded usage
priced with domain/pricing.py's exact integer formula, never a rule of thumb.

* Alternatives: a model's summed usage (tokens by kind, requests, units) at another model's price.
  Context-length tiers are not applied (the rollups keep sums, not each call's size), to the source
  model's own catalog figure either, so both sides of a saving use the same rule.
* Caching: what a target hit rate would save moves uncached input tokens to cached reads (never cache
  writes) and prices the difference.
* Hot spots: models and providers ranked by error rate and by p95 latency, from the same sums.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from fractions import Fraction

from meterd.domain.errors import InvalidArgument
from meterd.domain.pricing import CostBreakdown, Price, UsageAmounts, breakdown
from meterd.domain.usage_results import Aggregate, combine

DEFAULT_ALTERNATIVES = 5
DEFAULT_HOT_SPOTS = 5
BASIS_POINTS = 10_000


@dataclasses.dataclass(frozen=True)
class RecommendationQuery:
    candidates: tuple[tuple[str, str], ...]  # (provider, model); empty: the same provider's models
    max_alternatives: int
    target_bp: int | None  # cache hit rate to price, in basis points
    max_hot_spots: int
    min_calls: int


def validate_recommendation_query(
    *,
    candidate_models: Sequence[str],
    max_alternatives: int,
    target_bp: int | None,
    max_hot_spots: int,
    min_calls: int,
) -> RecommendationQuery:
    """Candidates as "provider/model" (split at the first "/"; provider lower-cased like recorded calls)."""
    violations = []
    candidates: list[tuple[str, str]] = []
    for i, text in enumerate(candidate_models):
        provider, _, model = text.partition("/")
        if not provider.strip() or not model.strip():
            violations.append((f"candidate_models[{i}]", "must look like provider/model, e.g. openai/gpt-4.1-mini"))
        else:
            candidates.append((provider.strip().lower(), model.strip()))
    if violations:
        raise InvalidArgument(violations)
    return RecommendationQuery(
        candidates=tuple(dict.fromkeys(candidates)),
        max_alternatives=max_alternatives or DEFAULT_ALTERNATIVES,
        target_bp=target_bp,
        max_hot_spots=max_hot_spots or DEFAULT_HOT_SPOTS,
        min_calls=max(1, min_calls),
    )


def amounts(a: Aggregate) -> UsageAmounts:
    return UsageAmounts(
        input_tokens=a.input_tokens,
        output_tokens=a.output_tokens,
        cached_read_tokens=a.cached_read_tokens,
        cache_write_tokens=a.cache_write_tokens,
        requests=a.requests,
        units=a.units,
    )


def untiered(price: Price) -> Price:
    return dataclasses.replace(price, tiers=()) if price.tiers else price


def price_of(price: Price, a: Aggregate | UsageAmounts) -> CostBreakdown:
    """The summed usage at `price`, tiers not applied (see the module's docstring)."""
    return breakdown(untiered(price), a if isinstance(a, UsageAmounts) else amounts(a))


def prices_every_kind(price: Price, a: Aggregate) -> bool:
    """Whether a candidate charges for each kind of token the usage has: a model with no output
    price (an embedding model) is no alternative for usage with output tokens."""
    return (a.input_tokens == 0 or price.input_per_mtok > 0) and (a.output_tokens == 0 or price.output_per_mtok > 0)


@dataclasses.dataclass(frozen=True)
class Alternative:
    provider: str
    model: str
    price: Price
    cost: CostBreakdown
    saving_nanos: int


def alternatives(
    usage: Aggregate,
    baseline_nanos: int,
    candidates: Iterable[tuple[str, str, Price]],
    *,
    explicit: bool,
    limit: int,
) -> list[Alternative]:
    """The usage priced on each candidate, cheapest first (ties by provider, model), at most `limit`.
    Named candidates are all listed, dearer ones too; otherwise only those that save something and
    price every kind of token the usage has."""
    out = []
    summed = amounts(usage)
    for provider, model, price in candidates:
        if not explicit and not prices_every_kind(price, usage):
            continue
        cost = price_of(price, summed)
        saving = baseline_nanos - cost.total
        if explicit or saving > 0:
            out.append(Alternative(provider, model, price, cost, saving))
    out.sort(key=lambda alt: (alt.cost.total, alt.provider, alt.model))
    return out[:limit]


def cache_what_if(price: Price | None, a: Aggregate, target_bp: int | None) -> tuple[int, int]:
    """(input tokens moved to cached reads, what that saves) for a target hit rate of all input
    tokens; (0, 0) when the hit rate is already there, without a target or without a price."""
    if target_bp is None or price is None:
        return 0, 0
    all_input = a.input_tokens + a.cached_read_tokens + a.cache_write_tokens
    moved = min(a.input_tokens, max(0, all_input * target_bp // BASIS_POINTS - a.cached_read_tokens))
    if moved == 0:
        return 0, 0
    after = dataclasses.replace(a, input_tokens=a.input_tokens - moved, cached_read_tokens=a.cached_read_tokens + moved)
    return moved, price_of(price, a).total - price_of(price, after).total


@dataclasses.dataclass(frozen=True)
class HotSpot:
    provider: str
    model: str  # "" for a whole provider
    stats: Aggregate

    @property
    def p95_us(self) -> int | None:
        return self.stats.latency_percentile_us(0.95)


@dataclasses.dataclass(frozen=True)
class HotSpots:
    error_rate_models: list[HotSpot]
    error_rate_providers: list[HotSpot]
    latency_models: list[HotSpot]
    latency_providers: list[HotSpot]


def _by_error_rate(spots: list[HotSpot], limit: int) -> list[HotSpot]:
    # Exact rates (Fraction), so 1/3 and 2/6 tie and then more errors come first, then names.
    ranked = sorted(
        (s for s in spots if s.stats.errors),
        key=lambda s: (-Fraction(s.stats.errors, s.stats.calls), -s.stats.errors, s.provider, s.model),
    )
    return ranked[:limit]


def _by_latency(spots: list[HotSpot], limit: int) -> list[HotSpot]:
    timed = [(p95, s) for s in spots if (p95 := s.p95_us) is not None]
    timed.sort(key=lambda item: (-item[0], item[1].provider, item[1].model))
    return [s for _, s in timed[:limit]]


def hot_spots(rows: Iterable[tuple[str, str, Aggregate]], min_calls: int, limit: int) -> HotSpots:
    """Models (and providers, their models combined) with at least min_calls calls, ranked."""
    models = [HotSpot(p, m, a) for p, m, a in rows]
    per_provider: dict[str, list[Aggregate]] = {}
    for spot in models:
        per_provider.setdefault(spot.provider, []).append(spot.stats)
    providers = [HotSpot(p, "", combine(parts)) for p, parts in per_provider.items()]
    models = [s for s in models if s.stats.calls >= min_calls]
    providers = [s for s in providers if s.stats.calls >= min_calls]
    return HotSpots(
        _by_error_rate(models, limit),
        _by_error_rate(providers, limit),
        _by_latency(models, limit),
        _by_latency(providers, limit),
    )
