"""Unit tests for meterd.domain.pricing; every expected figure is computed by hand in the comments."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from meterd.domain import genai_catalog
from meterd.domain.price_rules import PriceSet
from meterd.domain.pricing import (
    Price,
    UsageAmounts,
    cost_nanos,
    missing_cache_rates,
    nanos_to_usd,
    parse_catalog,
    select_price,
    usd_to_nanos,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JAN_2024 = datetime(2024, 1, 1, tzinfo=UTC)


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def price(
    pattern: str = "*",
    provider: str = "p",
    effective_from: datetime = JAN_2024,
    input_per_mtok: int = 0,
    output_per_mtok: int = 0,
    cached_read_per_mtok: int = 0,
    cache_write_per_mtok: int = 0,
    per_request: int = 0,
    per_unit: int = 0,
) -> Price:
    return Price(
        provider=provider,
        model_pattern=pattern,
        effective_from=effective_from,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cached_read_per_mtok=cached_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
        per_request=per_request,
        per_unit=per_unit,
    )


@pytest.fixture(scope="module")
def catalog() -> PriceSet:
    """The shared catalog as Meter imports it: the installed genai-prices data, converted."""
    conversion = genai_catalog.installed()
    return PriceSet(conversion.prices, conversion.providers)


def catalog_cost(catalog: PriceSet, provider: str, model: str, at: datetime = NOW, **usage: int) -> int:
    p = catalog.select(provider, model, at)
    assert p is not None, f"{provider}/{model} unpriced"
    return cost_nanos(p, UsageAmounts(**usage))


# ------------------------------------------------------------------------------- cost_nanos


def test_gpt4_seed_example_1000_in_500_out_is_six_cents(catalog: PriceSet) -> None:
    # $0.03/1K = 30_000_000_000 nanos/M; 1000*30e9 + 500*60e9 = 6e13; / 1e6 = 60_000_000 = $0.06.
    p = catalog.select("openai", "gpt-4", NOW)
    assert p is not None
    assert (p.input_per_mtok, p.output_per_mtok) == (30_000_000_000, 60_000_000_000)
    total = cost_nanos(p, UsageAmounts(input_tokens=1000, output_tokens=500))
    assert total == 60_000_000
    assert nanos_to_usd(total) == "0.06"


def test_gpt4_seed_cost_breakdown(catalog: PriceSet) -> None:
    # instrumentation-cost-tracking.md: Input $0.0300, Output $0.0300, Total $0.0600.
    input_cost = catalog_cost(catalog, "openai", "gpt-4", input_tokens=1000)
    output_cost = catalog_cost(catalog, "openai", "gpt-4", output_tokens=500)
    total = catalog_cost(catalog, "openai", "gpt-4", input_tokens=1000, output_tokens=500)
    assert (input_cost, output_cost, total) == (30_000_000, 30_000_000, 60_000_000)
    assert [f"{nanos_to_usd(n)}" for n in (input_cost, output_cost, total)] == ["0.03", "0.03", "0.06"]


@pytest.mark.parametrize(
    ("provider", "model", "per_1k_in", "per_1k_out"),
    [
        # instrumentation-cost-tracking.md "Supported Models", $ per 1K tokens.
        ("openai", "gpt-4", "0.03", "0.06"),
        ("openai", "gpt-4-turbo", "0.01", "0.03"),
        ("openai", "gpt-3.5-turbo", "0.0005", "0.0015"),
        ("anthropic", "claude-3-opus-20240229", "0.015", "0.075"),
        ("anthropic", "claude-3-sonnet-20240229", "0.003", "0.015"),
        ("anthropic", "claude-3-haiku-20240307", "0.00025", "0.00125"),
    ],
)
def test_seed_per_1k_prices(catalog: PriceSet, provider: str, model: str, per_1k_in: str, per_1k_out: str) -> None:
    # 1000 tokens cost exactly the per-1K figure.
    assert catalog_cost(catalog, provider, model, input_tokens=1000) == usd_to_nanos(per_1k_in)
    assert catalog_cost(catalog, provider, model, output_tokens=1000) == usd_to_nanos(per_1k_out)


@pytest.mark.parametrize(
    ("provider", "model", "per_m_in", "per_m_out"),
    [
        # fastapi-usage-tracker.md, api-usage-rate-limits.md, gemini-api-usage-admin.md, $ per 1M tokens.
        ("anthropic", "claude-3-sonnet", "3", "15"),
        ("anthropic", "claude-3-haiku", "0.25", "1.25"),
        # DeepSeek's peak-hour prices (00:30-16:30 UTC; see the test below for the off-peak ones).
        ("deepseek", "deepseek-chat", "0.27", "1.10"),
        ("deepseek", "deepseek-reasoner", "0.55", "2.19"),
        # The seed's flat OpenRouter $0.50/$1.50 hid the real price: OpenRouter passes Anthropic's on.
        ("openrouter", "anthropic/claude-3.5-sonnet", "3", "15"),
        ("groq", "llama-3.1-70b-versatile", "0.59", "0.79"),
        ("groq", "llama-3.1-8b-instant", "0.05", "0.08"),
        ("groq", "mixtral-8x7b-32768", "0.24", "0.24"),
        ("openai", "gpt-4", "30.00", "60.00"),
        ("openai", "gpt-3.5-turbo", "0.50", "1.50"),
        # The seed's "2.5 Flash/Pro" figures are the 1.5 list prices (below their 128K-token tier).
        ("google", "gemini-1.5-flash", "0.075", "0.30"),
        ("google", "gemini-1.5-pro", "1.25", "5.00"),
    ],
)
def test_seed_per_million_prices(catalog: PriceSet, provider: str, model: str, per_m_in: str, per_m_out: str) -> None:
    # 100,000 tokens (below every context tier) cost a tenth of the per-million figure; at noon UTC.
    noon = NOW + timedelta(hours=12)
    assert catalog_cost(catalog, provider, model, noon, input_tokens=100_000) * 10 == usd_to_nanos(per_m_in)
    assert catalog_cost(catalog, provider, model, noon, output_tokens=100_000) * 10 == usd_to_nanos(per_m_out)


def test_deepseek_off_peak_hours(catalog: PriceSet) -> None:
    # Outside 00:30-16:30 UTC deepseek-chat costs $0.135 in / $0.55 out per M (genai-prices'
    # time-of-day price): 100,000 tokens = 13_500_000 and 55_000_000 nanos; 16:30 is already off-peak.
    for at in (NOW + timedelta(hours=20), NOW + timedelta(hours=16, minutes=30), NOW + timedelta(minutes=29)):
        assert catalog_cost(catalog, "deepseek", "deepseek-chat", at, input_tokens=100_000) == 13_500_000
        assert catalog_cost(catalog, "deepseek", "deepseek-chat", at, output_tokens=100_000) == 55_000_000


def test_claude_with_cache_read_and_write(catalog: PriceSet) -> None:
    # claude-3-5-sonnet: in $3, out $15, cache read $0.30, cache write $3.75 per M.
    # 2000*3e9 + 1000*15e9 + 10000*0.3e9 + 4000*3.75e9 = 6e12 + 15e12 + 3e12 + 15e12 = 39e12
    # / 1e6 = 39_000_000 nanos = $0.039.
    total = catalog_cost(
        catalog,
        "anthropic",
        "claude-3-5-sonnet-20241022",
        input_tokens=2000,
        output_tokens=1000,
        cached_read_tokens=10_000,
        cache_write_tokens=4000,
    )
    assert total == 39_000_000
    assert nanos_to_usd(total) == "0.039"


def test_claude_haiku_cache_fractional_rates(catalog: PriceSet) -> None:
    # claude-3-5-haiku: in $0.80, cache read $0.08, cache write $1.00 per M.
    # 1234*0.8e9 + 5678*0.08e9 + 999*1e9 = 987.2e9 + 454.24e9 + 999e9 = 2_440_440_000_000
    # / 1e6 = 2_440_440 nanos.
    total = catalog_cost(
        catalog,
        "anthropic",
        "claude-3-5-haiku-latest",
        input_tokens=1234,
        cached_read_tokens=5678,
        cache_write_tokens=999,
    )
    assert total == 2_440_440


def test_anthropic_cache_multipliers() -> None:
    # Anthropic's own models: write = 1.25x input, read = 0.1x input (Claude 3 Haiku: its rounded
    # $0.30 / $0.03), in every version and tier.
    families = ("claude-3", "claude-sonnet-4", "claude-opus-4", "claude-haiku-4")
    anthropic = [
        p
        for p in genai_catalog.installed().prices
        if p.provider == "anthropic" and p.model_pattern.startswith(families)
    ]
    assert len(anthropic) > 10
    for p in anthropic:
        if p.cached_read_per_mtok == p.cache_write_per_mtok == p.input_per_mtok:
            continue  # no prompt caching (Claude 2, Instant): cached tokens count as input
        if p.model_pattern == "claude-3-haiku":
            assert (p.cache_write_per_mtok, p.cached_read_per_mtok) == (300_000_000, 30_000_000)
        else:
            assert p.cache_write_per_mtok * 100 == p.input_per_mtok * 125, p
            assert p.cached_read_per_mtok * 10 == p.input_per_mtok, p


def test_cerebras_per_token(catalog: PriceSet) -> None:
    # The seed's $0.000006/request for Cerebras is not what Cerebras charges today: genai-prices has
    # $0.10 per million tokens in and out. 5000*0.1e9 + 900*0.1e9 = 5.9e11; / 1e6 = 590_000 nanos.
    assert catalog_cost(catalog, "cerebras", "llama3.1-8b", requests=3, input_tokens=5000, output_tokens=900) == 590_000


def test_local_models_are_free(catalog: PriceSet) -> None:
    for provider in ("ollama", "local"):
        assert catalog_cost(catalog, provider, "llama3:70b", input_tokens=10**9, output_tokens=10**9, requests=5) == 0


def test_per_unit_and_per_request_add_to_tokens() -> None:
    # 2000 * 1_500_000 / 1e6 = 3000; + 2 * 7 + 3 * 11 = 3047.
    p = price(input_per_mtok=1_500_000, per_request=7, per_unit=11)
    assert cost_nanos(p, UsageAmounts(input_tokens=2000, requests=2, units=3)) == 3047


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (499_999, 0),  # 0.499999 nanos -> 0
        (500_000, 1),  # 0.5 -> 1 (half up)
        (1_500_000, 2),  # 1.5 -> 2
        (2_500_000, 3),  # 2.5 -> 3 (banker's rounding would give 2)
        (2_500_001, 3),
    ],
)
def test_rounding_half_up(tokens: int, expected: int) -> None:
    assert cost_nanos(price(input_per_mtok=1), UsageAmounts(input_tokens=tokens)) == expected


def test_rounded_once_on_the_whole_numerator() -> None:
    # 0.5 + 0.5 nanos = exactly 1; rounding each part would give 2.
    p = price(input_per_mtok=1, output_per_mtok=1)
    assert cost_nanos(p, UsageAmounts(input_tokens=500_000, output_tokens=500_000)) == 1


def test_large_amounts_stay_exact() -> None:
    # 10^12 tokens at $600/M = 10^6 * $600 = $600,000,000 = 6e17 nanos, + 1 nano per request;
    # above 2**53, so a float computation would lose the trailing nano.
    p = price(output_per_mtok=600_000_000_000, per_request=1)
    assert cost_nanos(p, UsageAmounts(output_tokens=10**12, requests=1)) == 600_000_000_000_000_001


def test_usage_and_price_reject_bad_numbers() -> None:
    with pytest.raises(ValueError):
        UsageAmounts(input_tokens=-1)
    with pytest.raises(ValueError):
        UsageAmounts(output_tokens=True)
    with pytest.raises(ValueError):
        price(input_per_mtok=-5)
    with pytest.raises(ValueError):
        price(per_request=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        price(effective_from=datetime(2024, 1, 1))  # naive
    with pytest.raises(ValueError):
        price(pattern="gpt-[45]")


# ----------------------------------------------------------------------------- select_price


def test_exact_beats_glob() -> None:
    prices = [price("gpt-4*", input_per_mtok=1), price("gpt-4", input_per_mtok=2), price("*", input_per_mtok=3)]
    assert select_price(prices, "p", "gpt-4", NOW).input_per_mtok == 2  # type: ignore[union-attr]
    assert select_price(prices, "p", "gpt-4-0613", NOW).input_per_mtok == 1  # type: ignore[union-attr]
    assert select_price(prices, "p", "claude", NOW).input_per_mtok == 3  # type: ignore[union-attr]


def test_more_literal_characters_win_among_globs() -> None:
    prices = [
        price("gpt-4.1*", input_per_mtok=1),
        price("gpt-4.1-mini*", input_per_mtok=2),
        price("*", input_per_mtok=3),
    ]
    assert select_price(prices, "p", "gpt-4.1-mini-2025-04-14", NOW).input_per_mtok == 2  # type: ignore[union-attr]
    assert select_price(prices, "p", "gpt-4.1-2025-04-14", NOW).input_per_mtok == 1  # type: ignore[union-attr]


def test_equal_specificity_tie_is_deterministic() -> None:
    # "a*" and "*a" both have one literal; the lexicographically smaller pattern wins in any order.
    a, b = price("*a", input_per_mtok=1), price("a*", input_per_mtok=2)
    assert select_price([a, b], "p", "aa", NOW) is a
    assert select_price([b, a], "p", "aa", NOW) is a


def test_latest_effective_version_wins_and_future_is_not_applied() -> None:
    old = price("o3*", effective_from=utc(2025, 4, 16), input_per_mtok=10)
    new = price("o3*", effective_from=utc(2025, 6, 10), input_per_mtok=2)
    future = price("o3*", effective_from=utc(2030, 1, 1), input_per_mtok=1)
    prices = [new, future, old]
    assert select_price(prices, "p", "o3", utc(2025, 5, 1)) is old
    assert select_price(prices, "p", "o3", utc(2025, 6, 10)) is new  # effective_from is inclusive
    assert select_price(prices, "p", "o3", NOW) is new
    assert select_price(prices, "p", "o3", utc(2025, 1, 1)) is None


def test_future_specific_price_does_not_hide_broader_one_in_force() -> None:
    broad = price("gpt-4*", effective_from=utc(2024, 1, 1))
    specific_later = price("gpt-4-turbo", effective_from=utc(2030, 1, 1))
    assert select_price([broad, specific_later], "p", "gpt-4-turbo", NOW) is broad


def test_unknown_model_and_other_provider_are_unpriced() -> None:
    prices = [price("gpt-4", provider="openai")]
    assert select_price(prices, "openai", "gpt-5-ultra", NOW) is None
    assert select_price(prices, "azure", "gpt-4", NOW) is None  # no cross-provider fallback
    assert select_price([], "openai", "gpt-4", NOW) is None


def test_provider_and_model_match_case_insensitively() -> None:
    p = price("gpt-4", provider="openai")
    assert select_price([p], "OpenAI", "GPT-4", NOW) is p


def test_select_price_rejects_naive_time() -> None:
    with pytest.raises(ValueError):
        select_price([price()], "p", "m", datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("provider", "model", "at", "pattern", "input_usd_per_m"),
    [
        # pattern: the genai-prices model id the name resolves to (its own match rules).
        ("openai", "gpt-4.1-mini-2025-04-14", NOW, "gpt-4.1-mini", "0.40"),
        ("openai", "gpt-4.1-nano", NOW, "gpt-4.1-nano", "0.10"),
        ("openai", "gpt-4.1", NOW, "gpt-4.1", "2.00"),
        ("openai", "gpt-4o-mini-2024-07-18", NOW, "gpt-4o-mini", "0.15"),
        # The old hand-kept catalog had $5.00 before 2024-10; genai-prices has one gpt-4o price.
        ("openai", "gpt-4o", utc(2024, 6, 1), "gpt-4o", "2.50"),
        ("openai", "gpt-4o", NOW, "gpt-4o", "2.50"),
        ("openai", "gpt-4-0125-preview", NOW, "gpt-4-turbo", "10.00"),
        ("openai", "gpt-4-turbo-2024-04-09", NOW, "gpt-4-turbo", "10.00"),
        ("openai", "o3", utc(2025, 5, 1), "o3", "10.00"),  # the source's history: $10 until 2025-06-10
        ("openai", "o3", NOW, "o3", "2.00"),
        ("openai", "o3-mini", NOW, "o3-mini", "1.10"),
        ("openai", "o1-mini", utc(2024, 12, 1), "o1-mini", "1.10"),  # the source has no $3.00 history
        ("anthropic", "claude-opus-4-1-20250805", NOW, "claude-opus-4-1", "15.00"),
        ("anthropic", "claude-opus-4-5-20251101", NOW, "claude-opus-4-5", "5.00"),
        ("anthropic", "claude-sonnet-4-20250514", NOW, "claude-sonnet-4-0", "3.00"),
        ("google", "gemini-2.5-flash", NOW, "gemini-2.5-flash", "0.30"),
        ("google", "gemini-2.5-flash-lite", NOW, "gemini-2.5-flash-lite", "0.10"),
        ("google", "gemini-2.5-pro", NOW, "gemini-2.5-pro", "1.25"),
    ],
)
def test_catalog_selection(
    catalog: PriceSet, provider: str, model: str, at: datetime, pattern: str, input_usd_per_m: str
) -> None:
    p = catalog.select(provider, model, at)
    assert p is not None
    assert p.model_pattern == pattern
    assert p.input_per_mtok == usd_to_nanos(input_usd_per_m)


# ------------------------------------------------------------------------------ conversions


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("30.00", 30_000_000_000),
        ("0.50", 500_000_000),
        ("0.000006", 6_000),
        ("0.000000001", 1),
        ("0", 0),
        ("2.190000000000", 2_190_000_000),  # trailing zeros beyond 9 places are exact
    ],
)
def test_usd_to_nanos(text: str, nanos: int) -> None:
    assert usd_to_nanos(text) == nanos


@pytest.mark.parametrize(
    "bad", ["0.0000000001", "0.0000000015", "-1", "-0.5", "+1", "1e-3", "", " 1", ".5", "1.", "NaN", "inf"]
)
def test_usd_to_nanos_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        usd_to_nanos(bad)


def test_usd_to_nanos_rejects_non_strings() -> None:
    for bad in (0.5, 1, None):
        with pytest.raises(ValueError):
            usd_to_nanos(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        usd_to_nanos("9223372036.854775808")  # 2**63 nanos


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0"),
        (1, "0.000000001"),
        (60_000_000, "0.06"),
        (30_000_000_000, "30"),
        (6_000, "0.000006"),
        (-1_500_000_000, "-1.5"),
    ],
)
def test_nanos_to_usd(nanos: int, text: str) -> None:
    assert nanos_to_usd(nanos) == text
    if nanos >= 0:
        assert usd_to_nanos(text) == nanos


# -------------------------------------------------------------------------- default catalog


def test_every_catalog_entry_is_well_formed() -> None:
    prices = genai_catalog.installed().prices
    assert len(prices) >= 2000
    rates = [f.name for f in fields(Price) if f.name.endswith("_mtok") or f.name.startswith("per_")]
    assert len(rates) == 6
    for p in prices:
        for name in rates:
            value = getattr(p, name)
            assert type(value) is int and value >= 0, (p, name)
        assert p.effective_from.tzinfo is not None and p.effective_from.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert p.provider == p.provider.lower()
        assert p.note and p.source, p
        assert p.price_id == ""


def test_catalog_covers_every_provider(catalog: PriceSet) -> None:
    providers = {p.id for p in catalog.rules.providers} | {p.provider for p in catalog.globs}
    assert {
        "openai",
        "anthropic",
        "google",
        "groq",
        "deepseek",
        "mistral",
        "x-ai",
        "cohere",
        "cerebras",
        "openrouter",
        "ollama",
        "local",
    } <= providers


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", m)
        for m in (
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4",
            "gpt-4-turbo",
            "gpt-3.5-turbo",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "o1",
            "o3-mini",
        )
    ]
    + [
        ("anthropic", m)
        for m in (
            "claude-3-opus-20240229",
            "claude-3-sonnet-20240229",
            "claude-3-haiku-20240307",
            "claude-3-5-sonnet-20241022",
            "claude-3-5-haiku-20241022",
            "claude-3-7-sonnet-20250219",
            "claude-sonnet-4-20250514",
            "claude-opus-4-20250514",
        )
    ]
    + [("google", "gemini-2.5-flash"), ("google", "gemini-2.5-pro")]
    + [("groq", "llama-3.1-8b-instant"), ("groq", "llama-3.1-70b-versatile"), ("groq", "mixtral-8x7b-32768")]
    + [("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner"), ("cerebras", "llama3.1-8b")]
    + [("openrouter", "meta-llama/llama-3.1-405b"), ("ollama", "llama3"), ("local", "my-finetune")]
    + [("xai", "grok-4"), ("x-ai", "grok-3"), ("mistral", "mistral-large-latest"), ("cohere", "command-r-plus")],
)
def test_requested_models_are_priced_now(catalog: PriceSet, provider: str, model: str) -> None:
    assert catalog.select(provider, model, NOW) is not None


# --------------------------------------------------------------------------- parse_catalog


def entry(**overrides: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "provider": "OpenAI",
        "model": "gpt-4",
        "effective_from": date(2024, 1, 1),
        "note": "test",
        "input_per_mtok": "30.00",
        "output_per_mtok": "60.00",
        "cached_read_per_mtok": "15.00",
        "cache_write_per_mtok": "30.00",
    }
    e.update(overrides)
    return e


def test_parse_catalog_converts_units() -> None:
    [p] = parse_catalog({"price": [entry(per_request="0.000006")]})
    assert p == Price(
        provider="openai",
        model_pattern="gpt-4",
        effective_from=utc(2024, 1, 1),
        input_per_mtok=30_000_000_000,
        output_per_mtok=60_000_000_000,
        cached_read_per_mtok=15_000_000_000,
        cache_write_per_mtok=30_000_000_000,
        per_request=6_000,
        per_unit=0,
        note="test",
    )


def test_parse_catalog_accepts_offset_datetime() -> None:
    cet = timezone(timedelta(hours=1))
    [p] = parse_catalog({"price": [entry(effective_from=datetime(2024, 1, 1, 1, 0, tzinfo=cet))]})
    assert p.effective_from == utc(2024, 1, 1)
    assert p.effective_from.tzinfo is UTC


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_per_mtok": 30.0}, "input_per_mtok"),  # a float, not a string
        ({"output_per_mtok": "0.0000000001"}, "output_per_mtok"),
        ({"per_unit": "-1"}, "per_unit"),
        ({"cached_read_per_mtok": None}, "cached_read_per_mtok"),
        ({"effective_from": "2024-01-01"}, "effective_from"),
        ({"effective_from": datetime(2024, 1, 1)}, "effective_from"),  # naive
        ({"model": "gpt-[45]"}, "wildcards"),
        ({"model": ""}, "model_pattern"),
        ({"price": "1"}, "unknown keys"),
        ({"note": 5}, "note"),
    ],
)
def test_parse_catalog_rejects_bad_entry_naming_it(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"price\[1\] \(OpenAI ") as exc:
        parse_catalog({"price": [entry(model="ok"), entry(**overrides)]})
    assert message in str(exc.value)


def test_parse_catalog_rejects_missing_key_and_duplicates() -> None:
    bad = entry()
    del bad["output_per_mtok"]
    with pytest.raises(ValueError, match="missing.*output_per_mtok"):
        parse_catalog({"price": [bad]})
    with pytest.raises(ValueError, match="duplicate"):
        parse_catalog({"price": [entry(), entry(provider="openai", model="GPT-4")]})
    with pytest.raises(ValueError, match="unknown top-level"):
        parse_catalog({"prices": []})
    with pytest.raises(ValueError, match="must be a table"):
        parse_catalog({"price": ["x"]})


def test_a_catalog_entry_without_cache_rates_or_note_bills_cache_tokens_at_the_input_rate() -> None:
    # The same rule as `meter prices set`: never $0 for cache tokens because a rate was left out.
    bare = entry()
    for key in ("cached_read_per_mtok", "cache_write_per_mtok", "note"):
        del bare[key]
    p, _ = parse_catalog({"price": [bare, entry(model="other", cached_read_per_mtok="3")]})
    assert (p.cached_read_per_mtok, p.cache_write_per_mtok, p.note) == (30_000_000_000, 30_000_000_000, "")
    assert missing_cache_rates(bare) == ["cached_read_per_mtok", "cache_write_per_mtok"]
    assert missing_cache_rates(entry()) == []


def test_usage_amounts_reject_what_the_fast_check_lets_through_to_the_full_one():
    from meterd.domain.pricing import UsageAmounts

    for bad in ({"input_tokens": -1}, {"units": 2**63}, {"requests": True}, {"output_tokens": 1.0}):
        with pytest.raises(ValueError):
            UsageAmounts(**bad)
    assert UsageAmounts(input_tokens=2**63 - 1).input_tokens == 2**63 - 1
