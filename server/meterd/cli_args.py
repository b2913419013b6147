"""argparse value types the direct commands share: durations, USD amounts, instants."""

from __future__ import annotations

import argparse


def positive_duration(text: str) -> float:
    from meterd.config import parse_seconds

    try:
        seconds = parse_seconds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 30d, 12h or 90m, got {text!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds


def usd(text: str) -> int:
    from meterd.domain.pricing import usd_to_nanos

    try:
        return usd_to_nanos(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def instant(text: str):
    """ISO 8601 date or date-time; without an offset it is UTC."""
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date or date-time like 2025-01-01, got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
