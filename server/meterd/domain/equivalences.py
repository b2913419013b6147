"""A tenant's model equivalence list (migrations/0015_model_equivalences.sql): named groups of
models the tenant considers interchangeable. GetRecommendations prices a used model on the other
members of every group it belongs to when the request names no candidates (docs/recommendations.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Iterable, Sequence

from meterd.domain.errors import InvalidArgument

MAX_GROUPS = 100  # per tenant
MIN_MODELS, MAX_MODELS = 2, 32  # per group
MAX_MODEL_TEXT = 257  # "provider/model": a provider and a model of up to 128 characters each
_NAME_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclasses.dataclass(frozen=True)
class ModelEquivalence:
    name: str
    models: tuple[tuple[str, str], ...]  # (provider, model), in the order given
    created_at: dt.datetime
    updated_at: dt.datetime


def model_text(provider: str, model: str) -> str:
    return f"{provider}/{model}"


def parse_model(text: str) -> tuple[str, str] | None:
    """("provider", "model") from "provider/model" (the first "/" splits; provider lower-cased, as
    recorded calls store it), or None when either side is empty."""
    provider, _, model = text.partition("/")
    provider, model = provider.strip().lower(), model.strip()
    return (provider, model) if provider and model else None


def validate_equivalence(name: str, models: Sequence[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(name, distinct members) or InvalidArgument naming every bad field."""
    violations = []
    if not _NAME_RE.fullmatch(name):
        violations.append(("name", "required: 1-64 characters of [A-Za-z0-9._:-], e.g. small-chat"))
    parsed: list[tuple[str, str]] = []
    for i, text in enumerate(models):
        member = parse_model(text) if 3 <= len(text) <= MAX_MODEL_TEXT else None
        if member is None:
            violations.append((f"models[{i}]", f"must look like provider/model, 3-{MAX_MODEL_TEXT} characters, "
                               "e.g. openai/gpt-4.1-mini"))  # fmt: skip
        else:
            parsed.append(member)
    distinct = tuple(dict.fromkeys((p, m.casefold()) for p, m in parsed))
    if not violations and not MIN_MODELS <= len(distinct) <= MAX_MODELS:
        violations.append(("models", f"give {MIN_MODELS}-{MAX_MODELS} distinct models, got {len(distinct)}"))
    if violations:
        raise InvalidArgument(violations)
    seen, members = set(), []
    for p, m in parsed:
        if (p, m.casefold()) not in seen:
            seen.add((p, m.casefold()))
            members.append((p, m))
    return name, tuple(members)


def equivalents_of(
    groups: Iterable[ModelEquivalence], provider: str, model: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """(names of the groups holding provider/model, their other members in group then list order,
    each once). Models compare case-insensitively, as prices match them."""
    key = (provider.lower(), model.casefold())
    names: list[str] = []
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for group in sorted(groups, key=lambda g: g.name):
        if any((p, m.casefold()) == key for p, m in group.models):
            names.append(group.name)
            for p, m in group.models:
                if (p, m.casefold()) != key:
                    out.setdefault((p, m.casefold()), (p, m))
    return names, list(out.values())


class CandidateSource(enum.StrEnum):
    """Where a used model's candidates came from (GetRecommendations' ModelRecommendation)."""

    REQUEST = "request"  # candidate_models
    EQUIVALENCE_LIST = "equivalence_list"  # the other members of the tenant's groups holding the model
    SAME_PROVIDER = "same_provider"  # the same provider's catalog models
