"""Coverage of the model names the installed provider SDKs know (their model Literal types) by the
shared catalog: the share of them Meter prices, per SDK and together."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import anthropic.types
import openai.types
import pytest

from meterd.domain import genai_catalog
from meterd.domain.price_rules import PriceSet

# Not today's date: a fixed instant after every version the installed catalog has.
AT = datetime(2100, 1, 1, tzinfo=UTC)


def literal_names(tp: object) -> list[str]:
    """The string literals of a Literal type, also inside Union[Literal[...], str]."""
    out: list[str] = []
    for arg in typing.get_args(tp):
        if isinstance(arg, str):
            out.append(arg)
        elif typing.get_origin(arg) in (typing.Literal, typing.Union):
            out += literal_names(arg)
    return out


def sdk_models() -> dict[str, list[str]]:
    models = {"openai": literal_names(openai.types.ChatModel), "anthropic": literal_names(anthropic.types.Model)}
    try:  # google-genai's model names live in its generated Interactions types
        from google.genai._gaos.types.interactions.model import Model as GoogleModel
    except ImportError:  # pragma: no cover - an SDK release that moved them
        pytest.fail("google-genai no longer has google.genai._gaos.types.interactions.model.Model")
    models["google"] = literal_names(GoogleModel)
    return models


def test_sdk_model_names_are_priced() -> None:
    conversion = genai_catalog.installed()
    catalog = PriceSet(conversion.prices, conversion.providers)
    total = priced = 0
    figures = {}
    for provider, names in sdk_models().items():
        assert len(names) >= 10, (provider, names)
        unpriced = [n for n in names if catalog.select(provider, n, AT) is None]
        figures[provider] = (len(names) - len(unpriced), len(names), unpriced)
        total += len(names)
        priced += len(names) - len(unpriced)
    print({p: f"{a}/{n}" for p, (a, n, _) in figures.items()}, f"together {priced}/{total}")
    # genai-prices 0.2.3 has no price for 2 of OpenAI's 92 names, 3 of Anthropic's 22 (the
    # claude-mythos previews) and 10 of Google's 39 (gemini-4 codenames, Lyria, robotics...).
    assert figures["openai"][0] >= 0.95 * figures["openai"][1], figures["openai"]
    assert priced >= 0.90 * total, figures
