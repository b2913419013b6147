"""Which digest period is due when: UTC days, ISO weeks and months, around month and year ends."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain.digests import SETTLE, dedup_key, due_period
from meterd.domain.windows import WindowKind, WindowSpec

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "now", "period"),
    [
        (WindowKind.DAY, at(2028, 3, 1, 0, 5), (at(2028, 2, 29), at(2028, 3, 1))),
        (WindowKind.DAY, at(2027, 1, 1, 0, 3), (at(2026, 12, 31), at(2027, 1, 1))),
        # Within SETTLE of midnight the day before yesterday is still the latest settled one.
        (WindowKind.DAY, at(2027, 1, 1, 0, 1), (at(2026, 12, 30), at(2026, 12, 31))),
        (WindowKind.WEEK, at(2028, 3, 6, 0, 5), (at(2028, 2, 28), at(2028, 3, 6))),
        (WindowKind.WEEK, at(2027, 1, 1, 12), (at(2026, 12, 21), at(2026, 12, 28))),
        (WindowKind.MONTH, at(2028, 3, 1, 0, 5), (at(2028, 2, 1), at(2028, 3, 1))),
        (WindowKind.MONTH, at(2027, 1, 31, 23, 59), (at(2026, 12, 1), at(2027, 1, 1))),
    ],
)
def test_the_latest_settled_period_is_due(kind, now, period):
    assert due_period(WindowSpec(kind), now) == period
    assert period[1] + SETTLE <= now


def test_a_digest_is_named_by_its_rule_and_period_start():
    assert dedup_key("daily", at(2028, 2, 29)) == "rd/daily/2028-02-29T00:00"
