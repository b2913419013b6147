"""Model matching as genai-prices defines it, on Meter's own data (the rules are stored as JSON).

A shared-catalog price row carries its model's match rule: a JSON tree of the source's clauses
(`{"equals": s}`, `{"starts_with": s}`, `{"ends_with": s}`, `{"contains": s}`, `{"regex": r}`,
`{"or": [...]}`, `{"and": [...]}`). Text clauses compare case-insensitively; regexes are searched
in the lower-cased model name, exactly as the source does. A provider's models are tried in the
source's order and the first match wins; a provider may fall back (one step) to other providers'
models (e.g. Azure to OpenAI). The call's provider is found by exact id, then by the providers'
own `provider_match` rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from meterd.domain.pricing import Price, choose

Matcher = Callable[[str], bool]


def compile_rule(rule: Any) -> Matcher:
    """A predicate over lower-cased model names; ValueError for anything not a known clause."""
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise ValueError(f"a match clause is an object with one key, got {rule!r}")
    ((kind, arg),) = rule.items()
    if kind in ("or", "and"):
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"{kind!r} needs a non-empty list of clauses")
        parts = [compile_rule(r) for r in arg]
        combine = any if kind == "or" else all
        return lambda text: combine(p(text) for p in parts)
    if not isinstance(arg, str):
        raise ValueError(f"{kind!r} needs a string, got {arg!r}")
    s = arg.lower()
    if kind == "equals":
        return lambda text: text == s
    if kind == "starts_with":
        return lambda text: text.startswith(s)
    if kind == "ends_with":
        return lambda text: text.endswith(s)
    if kind == "contains":
        return lambda text: s in text
    if kind == "regex":
        pattern = re.compile(arg)  # case-sensitive, as in the source (the text is lower-cased)
        return lambda text: pattern.search(text) is not None
    raise ValueError(f"unknown match clause {kind!r}")


@lru_cache(maxsize=8192)
def compiled(rule_json: str) -> Matcher:
    return compile_rule(json.loads(rule_json))


_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def normalize_compact_date(model: str) -> str:
    """`gpt-5.2-20251211` -> `gpt-5.2-2025-12-11` (the source's fallback for LiteLLM/OpenRouter refs)."""

    def replace(m: re.Match[str]) -> str:
        y, mo, d = int(m.group(2)), int(m.group(3)), int(m.group(4))
        try:
            date(y, mo, d)
        except ValueError:
            return m.group(0)
        return f"-{y:04d}-{mo:02d}-{d:02d}"

    return _COMPACT_DATE.sub(replace, model)


@dataclass(frozen=True)
class CatalogProvider:
    """A provider of the source catalog: how calls name it and where its models fall back to."""

    id: str
    provider_match: str = ""  # JSON rule over the call's provider name ("": id only)
    fallbacks: tuple[str, ...] = ()
    # Models of the source left unpriced (refused as inexact): (model id, match order, rule JSON).
    # They keep their place in the match order, so a name they match is unpriced rather than
    # matched by a later model's broader rule.
    unpriced: tuple[tuple[str, int, str], ...] = ()

    def to_json(self) -> dict:
        return {"id": self.id, "provider_match": self.provider_match, "fallbacks": list(self.fallbacks),
                "unpriced": [list(u) for u in self.unpriced]}  # fmt: skip

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> CatalogProvider:
        unpriced = tuple((m, int(o), r) for m, o, r in d.get("unpriced", ()))
        return CatalogProvider(d["id"], d.get("provider_match", ""), tuple(d.get("fallbacks", ())), unpriced)


@dataclass
class RuleIndex:
    """Providers (in source order) and each one's models (id, rule) in match order."""

    providers: Sequence[CatalogProvider]
    models: dict[str, list[tuple[str, Matcher]]] = field(default_factory=dict)

    @staticmethod
    def build(providers: Sequence[CatalogProvider], models: Iterable[tuple[str, str, int, str]]) -> RuleIndex:
        """models: (provider id, model id, match order, rule JSON), one per model (any version)."""
        seen: dict[tuple[str, str], tuple[int, str]] = {}
        for provider, model, order, rule in models:
            seen.setdefault((provider, model), (order, rule))
        by_provider: dict[str, list[tuple[int, str, Matcher]]] = {}
        for (provider, model), (order, rule) in seen.items():
            by_provider.setdefault(provider, []).append((order, model, compiled(rule)))
        index = RuleIndex(providers)
        for provider, items in by_provider.items():
            index.models[provider] = [(model, m) for _, model, m in sorted(items, key=lambda x: (x[0], x[1]))]
        return index

    def provider(self, name: str) -> CatalogProvider | None:
        name = name.strip().lower()
        for p in self.providers:
            if p.id == name:
                return p
        for p in self.providers:
            if p.provider_match and compiled(p.provider_match)(name):
                return p
        return None

    def _first(self, provider_id: str, model: str) -> str | None:
        for model_id, match in self.models.get(provider_id, ()):
            if match(model):
                return model_id
        return None

    def _find(self, p: CatalogProvider, model: str) -> tuple[str, str, bool] | None:
        if (found := self._first(p.id, model)) is not None:
            return p.id, found, False
        for fallback in p.fallbacks:
            if (found := self._first(fallback, model)) is not None:
                return fallback, found, True
        return None

    def resolve(self, provider: str, model: str) -> tuple[str, str, bool] | None:
        """(catalog provider id, model id, reached through a fallback provider) or None."""
        p = self.provider(provider)
        if p is None:
            return None
        model = model.lower()
        found = self._find(p, model)
        if found is None and (normalized := normalize_compact_date(model)) != model:
            found = self._find(p, normalized)
        return found


class PriceSet:
    """One set of price versions (a tenant's own, or the shared catalog) ready for lookups.

    Glob/exact patterns match as they always did; rows carrying a source rule are found through
    the RuleIndex (provider, then the first matching model), so only that model's versions compete.
    """

    def __init__(self, prices: Sequence[Price], providers: Sequence[CatalogProvider] = ()) -> None:
        self.globs = [p for p in prices if not p.match_rule]
        ruled = [p for p in prices if p.match_rule]
        self.by_model: dict[tuple[str, str], list[Price]] = {}
        for p in ruled:
            self.by_model.setdefault((p.provider, p.model_pattern), []).append(p)
        models = [(p.provider, p.model_pattern, p.match_order, p.match_rule) for p in ruled]
        if ruled:
            models += [(c.id, m, order, rule) for c in providers for m, order, rule in c.unpriced]
        self.rules = RuleIndex.build(providers, models)

    def candidates(self, provider: str, model: str) -> list[Price]:
        out = [p for p in self.globs if p.matches(provider, model)]
        if self.by_model and (found := self.rules.resolve(provider, model)) is not None:
            provider_id, model_id, via_fallback = found
            rows = self.by_model.get((provider_id, model_id), [])
            # The source prices a model reached through another provider without its request variants.
            out += [p for p in rows if not p.service_tier] if via_fallback else rows
        return out

    def select(self, provider: str, model: str, at: datetime, service_tier: str = "") -> Price | None:
        return choose(self.candidates(provider, model), at, service_tier)
