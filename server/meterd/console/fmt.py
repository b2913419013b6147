"""Presentation of Meter's numbers: nano-USD as dollars (exact, via Decimal), tokens, rates, times."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal

from google.protobuf import duration_pb2, timestamp_pb2

_CENT = Decimal("0.01")


def dollars(nanos: int) -> Decimal:
    """The exact dollar amount of an integer nano-USD figure."""
    return Decimal(int(nanos)).scaleb(-9)


def usd(nanos: int) -> str:
    """Dollars with sensible precision: cents from $1 up, otherwise enough digits to show the amount
    (at most 6 decimals, trailing zeros trimmed, never below 2): $1,234.57, $0.0625, $0.000003."""
    amount = dollars(nanos)
    if amount == 0:
        return "$0.00"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount.quantize(_CENT, ROUND_HALF_EVEN):,}"
    text = f"{amount.quantize(Decimal('0.000001'), ROUND_HALF_EVEN):f}".rstrip("0")
    if text == "0.":
        return f"{sign}<$0.000001" if not sign else "-$0.000001"
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def usd_exact(nanos: int) -> str:
    """Every digit, for a title attribute or CSV: $0.000625000."""
    return f"${dollars(nanos):,.9f}"


def number(value: int | float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def percent(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f}%"


def change(current: float, previous: float) -> str:
    """The change against the previous period: "+12.5%", "−3.0%", "new" or "—"."""
    if previous == 0:
        return "—" if current == 0 else "new"
    ratio = (current - previous) / previous
    return f"{'+' if ratio >= 0 else '−'}{abs(100 * ratio):.1f}%"


def seconds(duration: duration_pb2.Duration | None) -> float | None:
    if duration is None or (duration.seconds == 0 and duration.nanos == 0):
        return None
    return duration.seconds + duration.nanos / 1e9


def latency(duration: duration_pb2.Duration | None) -> str:
    value = seconds(duration)
    if value is None:
        return "—"
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"


def when(value: timestamp_pb2.Timestamp | dt.datetime | None) -> dt.datetime | None:
    """An aware UTC datetime from a Timestamp or datetime; None for an unset Timestamp."""
    if value is None:
        return None
    if isinstance(value, timestamp_pb2.Timestamp):
        if value.seconds == 0 and value.nanos == 0:
            return None
        return value.ToDatetime(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def utc(value) -> str:
    at = when(value)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def iso(value) -> str:
    at = when(value)
    return at.isoformat().replace("+00:00", "Z") if at else ""


def url_host(url: str) -> str:
    """scheme://host of a URL: chat and webhook URLs carry their token in the path or query."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else "(set)"
