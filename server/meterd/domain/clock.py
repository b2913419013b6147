"""The wall clock, in one place: code that needs "now" takes a clock argument defaulting to this, so
tests inject their own."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
