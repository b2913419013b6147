"""The shared catalog from genai-prices: its providers and models converted exactly into Meter prices.

Each model's price history (conditional prices with start dates) and its request variants (service
tiers, batch processing) become effective-dated Price versions: at every date where the source's
prices for a model change, the prices the source resolves for that day are converted. Decimal USD
becomes integer nanos with no rounding; a model with any figure that does not convert exactly is
refused as a whole (and counted), never approximated.

Mapping of the source's price keys (USD) onto Meter's rates:
  input_mtok, output_mtok, cache_read_mtok, cache_write_mtok  -> the four token rates (nanos/Mtok),
      tiered prices -> context tiers; an absent cache rate is the input rate (as the source does:
      such tokens count as input, tiers included)
  requests_kcount -> per_request (USD per 1,000 requests / 1,000)
  one unit price -> per_unit (nanos per unit_divisor units) + unit_kind (what usage.units counts):
      audio_hours, input_audio_hours -> "audio_second", per hour (divisor 3,600)
      input_mchars -> "character", per million characters (divisor 1,000,000)
      input_document_kpages, input_annotated_document_kpages -> "page", per 1,000 pages
      input_text_messages_kcount -> "message"; web_searches_kcount -> "web_search";
      storage_searches_kcount -> "storage_search", per 1,000 (divisor 1,000)
  Not representable (Meter records no such counts) and left out, counted in the report: modality
  token rates (audio/image/video/text tokens), 1-hour cache writes, reasoning and citation token
  rates, any second unit price of a model, and variants keyed by anything but the service tier or
  batch processing. Time-of-day prices (DeepSeek's peak hours) become versions with a daily_window.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from meterd.domain.price_rules import CatalogProvider
from meterd.domain.pricing import INT64_MAX, NANOS_PER_USD, Price

SOURCE_NAME = "genai-prices"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before the first dated price: the model's first price

_TOKEN_KEYS = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cached_read_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
}
# Unit price keys in the order one is chosen as the model's unit: (kind, units per priced quantity).
UNIT_KEYS = {
    "audio_hours": ("audio_second", 3600),
    "input_audio_hours": ("audio_second", 3600),
    "input_mchars": ("character", 1_000_000),
    "input_document_kpages": ("page", 1000),
    "input_annotated_document_kpages": ("page", 1000),
    "input_text_messages_kcount": ("message", 1000),
    "web_searches_kcount": ("web_search", 1000),
    "storage_searches_kcount": ("storage_search", 1000),
}
_REQUEST_KEY = "requests_kcount"
# Request context of a variant -> Meter's service_tier label (RecordCall.service_tier).
_CONTEXT_KEYS = {"service_tier": "{}", "processing": "{}"}


class Inexact(ValueError):
    pass


@dataclass
class Conversion:
    """The converted catalog and what could not be represented."""

    version: str
    providers: list[CatalogProvider]
    prices: list[Price]
    models: int = 0
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (provider, model, reason)
    dropped_keys: Counter = field(default_factory=Counter)  # price key -> versions that had it
    dropped_contexts: Counter = field(default_factory=Counter)  # variant `when` -> variants
    time_of_day: int = 0  # conditional prices with a daily window (imported as daily_window versions)

    def summary(self) -> str:
        dropped = ", ".join(f"{k} ({n})" for k, n in sorted(self.dropped_keys.items()))
        contexts = ", ".join(f"{k} ({n})" for k, n in sorted(self.dropped_contexts.items()))
        return (
            f"{SOURCE_NAME} {self.version}: {len(self.providers)} providers, {self.models} models, "
            f"{len(self.prices)} price versions; refused {len(self.refused)} models (inexact in nanos); "
            f"time-of-day prices {self.time_of_day}; "
            f"left out: price keys [{dropped or 'none'}], variants [{contexts or 'none'}]"
        )


def nanos(value: Decimal, per: int = 1) -> int:
    """USD `value` per `per` units -> integer nanos per unit, exactly, or Inexact."""
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise Inexact(f"not a non-negative decimal: {value!r}")
    n = value * NANOS_PER_USD
    if n % per or n != n.to_integral_value():
        raise Inexact(f"{value} USD / {per} is not a whole number of nanos")
    result = int(n) // per
    if result > INT64_MAX:
        raise Inexact(f"{value} exceeds the int64 nano range")
    return result


def rule_json(match: Any) -> str:
    """The source's match logic as Meter stores it (keys as in the source's JSON data)."""

    def tree(m: Any) -> Any:
        if hasattr(m, "or_"):
            return {"or": [tree(c) for c in m.or_]}
        if hasattr(m, "and_"):
            return {"and": [tree(c) for c in m.and_]}
        ((key, value),) = vars(m).items()
        return {key: value}

    return json.dumps(tree(match), separators=(",", ":"))


def _day(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=UTC)


def _resolve(model: Any, day: datetime, context: dict[str, str] | None, forced: Any = None) -> dict[str, Any]:
    """The source's ModelInfo.get_prices for one UTC day, with time-of-day prices left out, or with
    `forced` (a time-of-day conditional price) as the standard price, as inside its window."""
    from genai_prices.types import ModelPrice, StartDateConstraint

    if forced is not None:
        standard = forced.prices
    elif isinstance(model.prices, ModelPrice):
        standard = model.prices
    else:
        standard = model.prices[0].prices
        for cp in reversed(model.prices):  # the last active one takes precedence
            c = cp.constraint
            if c is None or (isinstance(c, StartDateConstraint) and c.active(day)):
                standard = cp.prices
                break
    values = {k: v for k, v in vars(standard).items() if v is not None and not k.startswith("_")}
    if context:
        overrides: dict[str, Any] = {}
        for variant in model.price_variants or ():
            if variant.constraint is not None and not variant.constraint.active(day):
                continue
            if all(context.get(k) == v for k, v in variant.when.items()):
                for k, v in vars(variant.prices).items():
                    if v is not None and not k.startswith("_"):
                        overrides.setdefault(k, v)
        values.update(overrides)
    return values


def _window(constraint: Any) -> str:
    def utc(t: time) -> str:
        t = t if t.tzinfo is None else datetime.combine(date(1970, 1, 1), t).astimezone(UTC).timetz()
        return t.strftime("%H:%M:%S")

    return f"{utc(constraint.start_time)}-{utc(constraint.end_time)}"


def _time_of_day(model: Any) -> list[tuple[str, Any]]:
    """(window, conditional price) of every time-of-day price of the model."""
    from genai_prices.types import ModelPrice, TimeOfDateConstraint

    if isinstance(model.prices, ModelPrice):
        return []
    return [(_window(cp.constraint), cp) for cp in model.prices if isinstance(cp.constraint, TimeOfDateConstraint)]


def _reached(model: Any, day: datetime) -> set[int]:
    """ids of the time-of-day prices the source would use inside their windows on `day`: those
    after (later in the list than) the last price that is always or already in force."""
    from genai_prices.types import ModelPrice, StartDateConstraint, TimeOfDateConstraint

    out: set[int] = set()
    if isinstance(model.prices, ModelPrice):
        return out
    for cp in reversed(model.prices):
        c = cp.constraint
        if isinstance(c, TimeOfDateConstraint):
            out.add(id(cp))
        elif c is None or (isinstance(c, StartDateConstraint) and c.active(day)):
            break
    return out


def _rates(values: dict[str, Any], dropped: Counter) -> dict[str, Any]:
    """Meter's fields for one resolved source price (Inexact when a figure does not convert)."""
    from genai_prices.types import TieredPrices

    out: dict[str, Any] = {name: 0 for name in _TOKEN_KEYS.values()}
    out.update(per_request=0, per_unit=0, unit_divisor=1, unit_kind="")
    tiers: list[tuple[str, int, int]] = []
    for key, field_name in _TOKEN_KEYS.items():
        value = values.get(key)
        if value is None and key in ("cache_read_mtok", "cache_write_mtok"):
            value = values.get("input_mtok")
        if value is None:
            continue
        if isinstance(value, TieredPrices):
            out[field_name] = nanos(value.base)
            tiers += [(field_name, t.start, nanos(t.price)) for t in value.tiers]
        else:
            out[field_name] = nanos(value)
    # The model's one unit price: the first of UNIT_KEYS it has (their order is the documented one).
    unit_key = next((k for k in UNIT_KEYS if k in values), None)
    for key, value in values.items():
        if key in _TOKEN_KEYS:
            continue
        if key != _REQUEST_KEY and key != unit_key:
            dropped[key] += 1
            continue
        if isinstance(value, TieredPrices):
            raise Inexact(f"{key} has tiers (only token rates can)")
        if key == _REQUEST_KEY:
            out["per_request"] = nanos(value, 1000)
        else:
            kind, per = UNIT_KEYS[key]
            out["per_unit"], out["unit_divisor"], out["unit_kind"] = nanos(value), per, kind
    out["tiers"] = tuple(sorted(tiers))
    return out


def _boundaries(model: Any) -> list[datetime]:
    from genai_prices.types import ModelPrice, StartDateConstraint

    days = {EPOCH}
    if not isinstance(model.prices, ModelPrice):
        days |= {
            _day(cp.constraint.start_date) for cp in model.prices if isinstance(cp.constraint, StartDateConstraint)
        }
    for v in model.price_variants or ():
        if isinstance(v.constraint, StartDateConstraint):
            days.add(_day(v.constraint.start_date))
    return sorted(days)


def _tier_label(when: dict[str, str]) -> str | None:
    if len(when) == 1:
        ((key, value),) = when.items()
        if key in _CONTEXT_KEYS and value:
            return value
    return None


def convert_model(provider_id: str, order: int, model: Any, version: str, report: Conversion) -> list[Price]:
    """Every effective-dated version of one model: one timeline per service tier ("" standard) and,
    for time-of-day prices, per daily window."""
    contexts: dict[str, dict[str, str]] = {"": {}}
    for v in model.price_variants or ():
        label = _tier_label(v.when)
        if label is None:
            report.dropped_contexts[json.dumps(v.when, sort_keys=True)] += 1
        else:
            contexts.setdefault(label, dict(v.when))
    windows = _time_of_day(model)
    if len({w for w, _ in windows}) != len(windows):
        raise Inexact("two time-of-day prices with the same window")
    days = _boundaries(model)
    rule = rule_json(model.match)
    note = (model.name or model.id)[:200]
    out: list[Price] = []
    dropped: Counter = Counter()
    standard_at: dict[datetime, dict] = {}
    for label, context in contexts.items():
        timelines: dict[str, dict | None] = {"": None, **{w: None for w, _ in windows}}
        for day in days:
            rates = _rates(_resolve(model, day, context or None), dropped)
            if label:
                # A tier version starts where the variant first differs from the standard price.
                if timelines[""] is None and rates == standard_at[day]:
                    continue
            else:
                standard_at[day] = rates
            reached = _reached(model, day)
            versions = [("", rates)]
            for window, cp in windows:
                in_window = _rates(_resolve(model, day, context or None, cp), dropped) if id(cp) in reached else rates
                # A window version starts where it first differs; once started it follows every change
                # (outside its reach it repeats the price without a window).
                if timelines[window] is not None or in_window != rates:
                    versions.append((window, in_window))
            for window, figures in versions:
                if figures == timelines[window]:
                    continue
                timelines[window] = figures
                out.append(
                    Price(provider=provider_id, model_pattern=model.id, effective_from=day, service_tier=label,
                          daily_window=window, match_rule=rule, match_order=order, source=f"{SOURCE_NAME} {version}",
                          note=note, **figures)
                )  # fmt: skip
    report.dropped_keys.update(dropped)
    report.time_of_day += len(windows)
    return out


def convert(providers: Sequence[Any], version: str) -> Conversion:
    """The whole source catalog (genai_prices Provider objects) as Meter prices."""
    report = Conversion(
        version=version,
        providers=[
            CatalogProvider(
                p.id,
                rule_json(p.provider_match) if p.provider_match is not None else "",
                tuple(p.fallback_model_providers or ()),
            )
            for p in providers
        ],
        prices=[],
    )
    seen: set[tuple[str, str]] = set()
    for i, p in enumerate(providers):
        unpriced: list[tuple[str, int, str]] = []
        for order, model in enumerate(p.models):
            report.models += 1
            if (p.id, model.id.lower()) in seen:
                report.refused.append((p.id, model.id, "duplicate model id"))
                continue
            seen.add((p.id, model.id.lower()))
            try:
                report.prices += convert_model(p.id, order, model, version, report)
            except (Inexact, ValueError) as e:
                report.refused.append((p.id, model.id, str(e)[:300]))
                unpriced.append((model.id, order, rule_json(model.match)))
        if unpriced:
            report.providers[i] = replace(report.providers[i], unpriced=tuple(unpriced))
    return report


def installed_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


def meter_additions() -> list[Price]:
    """Meter-only zero prices for self-hosted models (meter_prices.toml), imported with the source."""
    from pathlib import Path

    from meterd.domain.pricing import load_catalog

    return [replace(p, source="meter") for p in load_catalog(Path(__file__).with_name("meter_prices.toml"))]


def installed() -> Conversion:
    """The catalog of the installed genai-prices package (no network), plus Meter's additions."""
    from genai_prices.data import providers

    conversion = convert(providers, installed_version())
    conversion.prices += meter_additions()
    return conversion


def from_file(path: str, version: str = "") -> Conversion:
    """A data file in the source's JSON format (its published data.json)."""
    from genai_prices.types import _providers_from_raw  # the parser genai-prices uses for its own updates

    with open(path, "rb") as fh:
        raw = json.load(fh)
    conversion = convert(_providers_from_raw(raw), version or f"file {path.rsplit('/', 1)[-1]}")
    conversion.prices += meter_additions()
    return conversion


def without_ids(prices: Iterable[Price]) -> list[Price]:
    return [replace(p, price_id="") for p in prices]
