"""A Price and an AlertRule from the console's admin forms: dollars typed by people converted exactly
to nano-USD, names for the enums, channels as JSON objects. No web imports (like limit_form); Meter
validates the rest and its INVALID_ARGUMENT message is shown as is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf import json_format

from meter.builders import as_enum
from meter.v1 import admin_pb2, common_pb2
from meterd.console.limit_form import WINDOW_NAMES, E, text_field
from meterd.console.ranges import RangeError, parse_instant

ALERT_KINDS = {
    common_pb2.AlertKind.Name(v).removeprefix("ALERT_KIND_").lower(): as_enum(common_pb2.AlertKind, v)
    for v in common_pb2.AlertKind.values()
    if v != common_pb2.ALERT_KIND_UNSPECIFIED
}
SEVERITIES = {"info": common_pb2.SEVERITY_INFO, "warning": common_pb2.SEVERITY_WARNING,
              "critical": common_pb2.SEVERITY_CRITICAL}  # fmt: skip
# The price form's dollar fields, in the order shown, with the Price field each fills.
PRICE_RATES = (
    ("input", "input_nanos_per_mtok"),
    ("output", "output_nanos_per_mtok"),
    ("cached_read", "cached_read_nanos_per_mtok"),
    ("cache_write", "cache_write_nanos_per_mtok"),
    ("per_request", "request_nanos"),
    ("per_unit", "unit_nanos"),
)
MAX_CHANNELS_TEXT = 16 * 1024


def _nanos(form, name: str, *, required: bool = False) -> int | None:
    """Dollars (e.g. 2.50 or $0.000001) to nano-USD, exactly; None when left empty."""
    raw = text_field(form, name, 40).replace(",", "").lstrip("$")
    if not raw:
        if required:
            raise RangeError(f"{name} is required (dollars)")
        return None
    try:
        amount = Decimal(raw).scaleb(9)
    except InvalidOperation:
        raise RangeError(f"{name} must be an amount in dollars, got {raw!r}") from None
    if amount != amount.to_integral_value() or amount < 0:
        raise RangeError(f"{name}: at most 9 decimals of a dollar, not negative")
    return int(amount)


def price_from_form(form) -> tuple[admin_pb2.Price, list[str]]:
    """The tenant price version of the form, and the cache rates left empty (billed at the input rate,
    the rule of `meter prices set` and catalog files, which the page says)."""
    rates = {field: _nanos(form, name, required=name in ("input", "output")) for name, field in PRICE_RATES}
    defaulted = [name for name in ("cached_read", "cache_write") if rates[dict(PRICE_RATES)[name]] is None]
    for name in defaulted:
        rates[dict(PRICE_RATES)[name]] = rates["input_nanos_per_mtok"]
    when = text_field(form, "effective_from", 40)
    if not when:
        raise RangeError("effective_from is required (an ISO date or date-time, UTC)")
    rate_fields: dict[str, Any] = {field: value or 0 for field, value in rates.items()}  # int nano-USD
    price = admin_pb2.Price(
        provider=text_field(form, "provider", 128),
        model_pattern=text_field(form, "model", 128),
        note=text_field(form, "note", 1024),
        **rate_fields,
    )
    price.effective_from.FromDatetime(parse_instant(when))
    return price, defaulted


def _choice(form, name: str, choices: Mapping[str, E], default: str = "") -> E:
    value = text_field(form, name) or default
    if value not in choices:
        raise RangeError(f"{name} is one of {', '.join(choices)}")
    return choices[value]


def _whole(form, name: str) -> int:
    raw = text_field(form, name, 20)
    if raw and not raw.isdigit():
        raise RangeError(f"{name} must be a whole number, got {raw!r}")
    return int(raw or 0)


def _fraction(form, name: str) -> float:
    raw = text_field(form, name, 20)
    try:
        value = float(raw.rstrip("%")) if raw else 0.0
    except ValueError:
        raise RangeError(f"{name} must be a fraction like 0.05 (or 5%), got {raw!r}") from None
    return value / 100 if raw.endswith("%") else value


def channels_from_text(text: str) -> list[admin_pb2.AlertChannel]:
    """One JSON object per line, as `meter alerts rules set --channel`: {"kind":"slack","url":"..."}."""
    if len(text) > MAX_CHANNELS_TEXT:
        raise RangeError(f"channels: at most {MAX_CHANNELS_TEXT} characters")
    channels = []
    for number, line in enumerate((raw.strip() for raw in text.splitlines()), 1):
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise RangeError(f'channels line {number}: a JSON object like {{"kind":"slack","url":"https://..."}}')
        if isinstance(value.get("kind"), str):
            value["kind"] = "CHANNEL_KIND_" + value["kind"].upper()
        if isinstance(value.get("smtp_tls"), str):
            value["smtp_tls"] = "SMTP_TLS_" + value["smtp_tls"].upper()
        try:
            channels.append(json_format.ParseDict(value, admin_pb2.AlertChannel()))
        except json_format.ParseError as exc:
            raise RangeError(f"channels line {number}: {str(exc)[:200]}") from None
    return channels


def rule_from_form(form) -> admin_pb2.AlertRule:
    thresholds = [t.strip() for t in text_field(form, "thresholds").split(",") if t.strip()]
    if not all(t.isdigit() for t in thresholds):
        raise RangeError("thresholds are whole percents, e.g. 80,100")
    rule = admin_pb2.AlertRule(
        id=text_field(form, "id", 64),
        kind=_choice(form, "kind", ALERT_KINDS),
        severity=_choice(form, "severity", SEVERITIES, "warning"),
        scope=common_pb2.Selector(
            subject=text_field(form, "subject"),
            subject_prefix=text_field(form, "subject_prefix"),
            provider=text_field(form, "provider"),
            model=text_field(form, "model"),
        ),
        thresholds_percent=[int(t) for t in thresholds],
        limit_id=text_field(form, "limit_id", 64),
        amount_nanos=_nanos(form, "amount") or 0,
        error_rate=_fraction(form, "error_rate"),
        min_calls=_whole(form, "min_calls"),
        count=_whole(form, "count"),
        webhook_url=text_field(form, "webhook_url", 2048),
        webhook_secret=text_field(form, "webhook_secret", 256),
        disabled=form.get("disabled") == "1",
        channels=channels_from_text(str(form.get("channels", ""))),
        message_template=text_field(form, "template", 2000),
    )
    window = text_field(form, "window")
    if window:
        rule.window.kind = _choice(form, "window", WINDOW_NAMES)
        rule.window.duration.seconds = _whole(form, "window_seconds")
    if latency_ms := _whole(form, "latency_ms"):
        rule.latency.FromMilliseconds(latency_ms)
    if cooldown := _whole(form, "cooldown_seconds"):
        rule.cooldown.seconds = cooldown
    return rule


def replaced_secrets(existing: admin_pb2.AlertRule | None, rule: admin_pb2.AlertRule) -> str:
    """Why saving `rule` over `existing` would silently lose delivery settings, or "": SetAlertRule
    replaces the channels and the webhook secret, which are never shown, so a form that leaves them
    empty would drop them."""
    if existing is None:
        return ""
    lost = []
    if existing.channels and not rule.channels:
        lost.append(f"{len(existing.channels)} channel(s)")
    if existing.webhook_target and not rule.webhook_url:
        lost.append("its webhook")
    return f"rule {existing.id} has {' and '.join(lost)}: re-enter them, or tick 'drop them'" if lost else ""
