"""GetRecommendations: one GetUsage by provider and model (rollups unless labels or the outcome are
filtered), priced on the catalog with domain/recommendations.py. See docs/recommendations.md."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.equivalences import CandidateSource, equivalents_of
from meterd.domain.pricing import CostBreakdown, Price
from meterd.domain.recommendations import (
    Alternative,
    HotSpots,
    RecommendationQuery,
    alternatives,
    cache_what_if,
    hot_spots,
    price_of,
    untiered,
)
from meterd.domain.usage import UsageQuery
from meterd.domain.usage_results import Aggregate
from meterd.service.ports import EquivalencePort, UsagePort
from meterd.service.prices import PriceBook


@dataclasses.dataclass(frozen=True)
class ModelReport:
    provider: str
    model: str
    stats: Aggregate
    price: Price | None  # the model's own price at priced_at; None: unpriced
    catalog_cost: CostBreakdown | None
    alternatives: list[Alternative]
    cache_tokens_added: int
    cache_saving_nanos: int
    source: CandidateSource = CandidateSource.SAME_PROVIDER
    groups: tuple[str, ...] = ()  # with EQUIVALENCE_LIST: the groups holding the model, by name


@dataclasses.dataclass(frozen=True)
class RecommendationReport:
    start: dt.datetime  # the range answered
    end: dt.datetime
    priced_at: dt.datetime
    models: list[ModelReport]
    totals: Aggregate
    target_bp: int | None
    hot: HotSpots
    unpriced_candidates: list[tuple[str, str]]

    @property
    def target_cache_saving_nanos(self) -> int:
        return sum(m.cache_saving_nanos for m in self.models)


class RecommendationService:
    def __init__(self, usage: UsagePort, prices: PriceBook, equivalences: EquivalencePort | None = None) -> None:
        self.usage = usage
        self.prices = prices
        self.equivalences = equivalences  # None: no equivalence list (same-provider candidates)

    async def recommend(self, tenant_id: str, query: UsageQuery, q: RecommendationQuery) -> RecommendationReport:
        """query: grouped by provider and model, dearest first (api/recommendations.py builds it).
        Candidates: the request's; else, for a model in groups of the tenant's equivalence list, the
        groups' other members (any provider, all listed); else the same provider's models."""
        start, end = query.answered_range()
        data = await self.usage.usage(tenant_id, query, start, end, None)
        at = query.end  # the requested end: prices in force then, not in the hour rollups round up to
        rows = [(r.key.provider or "", r.key.model or "", r.stats) for r in data.rows]
        named = await self._priced(tenant_id, q.candidates, at)
        groups = [] if q.candidates or self.equivalences is None else await self.equivalences.list(tenant_id)
        same_provider: dict[str, list[tuple[str, str, Price]]] = {}
        members: dict[tuple[str, str], tuple[str, str, Price] | None] = {}
        unpriced = [c for c in q.candidates if c not in {(p, m) for p, m, _ in named}]
        models = []
        for provider, model, stats in rows:
            price = await self.prices.lookup(tenant_id, provider, model, at)
            catalog = price_of(price, stats) if price is not None else None
            baseline = catalog.total if catalog is not None else stats.cost_nanos
            names, equivalents = equivalents_of(groups, provider, model)
            if q.candidates:
                source, pool = CandidateSource.REQUEST, named
            elif names:
                source, pool = CandidateSource.EQUIVALENCE_LIST, []
                for member in equivalents:
                    if member not in members:
                        priced = await self._priced(tenant_id, [member], at)
                        members[member] = priced[0] if priced else None
                        if not priced:
                            unpriced.append(member)
                    if (found := members[member]) is not None:
                        pool.append(found)
            else:
                source = CandidateSource.SAME_PROVIDER
                if provider not in same_provider:
                    names_of = await self.prices.model_names(tenant_id, provider)
                    same_provider[provider] = await self._priced(tenant_id, [(provider, n) for n in names_of], at)
                pool = same_provider[provider]
            pool = [c for c in pool if (c[0], c[1]) != (provider, model)]
            explicit = source is not CandidateSource.SAME_PROVIDER  # named or configured: all listed
            alts = alternatives(stats, baseline, pool, explicit=explicit, limit=q.max_alternatives)
            moved, saving = cache_what_if(price, stats, q.target_bp)
            models.append(
                ModelReport(provider, model, stats, price, catalog, alts, moved, saving, source, tuple(names))
            )
        return RecommendationReport(
            start, end, at, models, data.totals, q.target_bp, hot_spots(rows, q.min_calls, q.max_hot_spots), unpriced
        )

    async def _priced(
        self, tenant_id: str, models: tuple[tuple[str, str], ...] | list[tuple[str, str]], at: dt.datetime
    ) -> list[tuple[str, str, Price]]:
        """The models that have a price at `at`, with it (a model without one cannot be priced)."""
        out = []
        for provider, model in models:
            price = await self.prices.lookup(tenant_id, provider, model, at)
            if price is not None:
                out.append((provider, model, untiered(price)))
        return out
