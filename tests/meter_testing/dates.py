"""Fixed "nows" for date-sensitive tests: month starts and ends (31- and 30-day months, February),
a leap day, a year end and a year start. A test that depends on today's date runs under each, via
`@pytest.mark.parametrize("now", FIXED_NOWS, ids=str)` and an injected clock, so it passes on any day."""

from __future__ import annotations

import datetime as dt

FIXED_NOWS = (
    dt.datetime(2026, 1, 31, 23, 59, 30, tzinfo=dt.UTC),  # end of a 31-day month
    dt.datetime(2026, 3, 1, 0, 0, 30, tzinfo=dt.UTC),  # start of a month, after a short February
    dt.datetime(2026, 4, 30, 23, 0, tzinfo=dt.UTC),  # end of a 30-day month
    dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.UTC),  # a leap day
    dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=dt.UTC),  # year end
    dt.datetime(2027, 1, 1, 0, 0, 30, tzinfo=dt.UTC),  # year start
)


def date_id(now: dt.datetime) -> str:
    return f"{now:%Y-%m-%dT%H:%M}"
