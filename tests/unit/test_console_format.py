"""The console's pure parts: dollars from nanos (exact), ranges and their previous period, limit
run-out, and the table formats."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from meterd.console import fmt, limits_view, ranges
from meterd.console.tables import Column, render

NOW = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "$0.00"),
        (1_234_567_890_123, "$1,234.57"),
        (1_005_000_000, "$1.00"),  # half-even at the cent
        (1_015_000_000, "$1.02"),
        (62_500_000, "$0.0625"),
        (500_000_000, "$0.50"),
        (3_000, "$0.000003"),
        (400, "<$0.000001"),
        (-2_500_000_000, "-$2.50"),
        (-62_500_000, "-$0.0625"),
    ],
)
def test_usd(nanos, text):
    assert fmt.usd(nanos) == text


def test_exact_dollars_keep_every_nano():
    assert fmt.usd_exact(625_001) == "$0.000625001"
    assert f"{fmt.dollars(2**62):f}" == "4611686018.427387904"


def test_change():
    assert fmt.change(150, 100) == "+50.0%"
    assert fmt.change(50, 100) == "−50.0%"
    assert fmt.change(5, 0) == "new" and fmt.change(0, 0) == "—"


def test_presets_and_previous_period():
    today = ranges.resolve("today", NOW)
    assert today.start == dt.datetime(2026, 3, 10, tzinfo=dt.UTC) and today.end == NOW
    assert today.previous().start == today.start - (NOW - today.start)
    month = ranges.resolve("month", NOW)
    assert month.start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    week = ranges.resolve("7d", NOW)
    assert week.previous().end == week.start and week.previous().span == dt.timedelta(days=7)
    custom = ranges.resolve("custom", NOW, "2026-03-01", "2026-03-03")
    assert custom.end == dt.datetime(2026, 3, 4, tzinfo=dt.UTC)  # a date alone includes that day
    assert ranges.resolve("custom", NOW, "2026-03-01T06:00+02:00").start == dt.datetime(2026, 3, 1, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("custom", ""), "needs a start"),
        (("custom", "soon"), "not a date"),
        (("custom", "2026-03-05", "2026-03-01"), "before the end"),
        (("custom", "2020-01-01"), "at most 400 days"),
        (("fortnight",), "unknown range"),
    ],
)
def test_bad_ranges(args, message):
    with pytest.raises(ranges.RangeError, match=message):
        ranges.resolve(args[0], NOW, *args[1:])


def test_report_periods_are_the_last_whole_ones():
    assert ranges.report_range("day", NOW).start == dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
    week = ranges.report_range("week", NOW)  # 2026-03-10 is a Tuesday
    assert (week.start, week.end) == (dt.datetime(2026, 3, 2, tzinfo=dt.UTC), dt.datetime(2026, 3, 9, tzinfo=dt.UTC))
    month = ranges.report_range("month", NOW)
    assert (month.start, month.end) == (dt.datetime(2026, 2, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC))


def test_runout_at_the_average_rate():
    start = NOW - dt.timedelta(hours=10)
    reset = NOW + dt.timedelta(hours=14)
    assert limits_view.runout(50, 100, start, NOW, reset) == NOW + dt.timedelta(hours=10)
    assert limits_view.runout(10, 100, start, NOW, reset) is None  # 90 h away: after the reset
    assert limits_view.runout(100, 100, start, NOW, reset) == NOW
    assert limits_view.runout(0, 100, start, NOW, reset) is None
    assert limits_view.runout(1, 10**18, start, NOW, None) is None  # far beyond any date: no overflow


def test_tables_in_every_format():
    cols = [Column("model", "model"), Column("cost", "cost", "usd"), Column("calls", "calls", "int")]
    rows = [{"model": "gpt-4.1", "cost": 1_500_000_000, "calls": 1200}, {"model": "o3", "cost": 62_500_000, "calls": 3}]
    table = render(cols, rows).splitlines()
    assert table[0] == "model       cost  calls"
    assert table[2] == "gpt-4.1    $1.50  1,200"
    assert table[3] == "o3       $0.0625      3"
    assert len({len(line) for line in table}) == 1
    data = json.loads(render(cols, rows, "json"))
    assert data[1] == {"model": "o3", "cost_nanos": 62_500_000, "cost_usd": "0.062500000", "calls": 3}
    assert render(cols, rows, "csv").splitlines()[1] == "gpt-4.1,1.500000000,1200"
    assert render(cols, rows, "markdown").splitlines()[1] == "| --- | ---: | ---: |"


def test_every_template_and_asset_ships_in_the_package():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "meterd.console" in config["packages"]
    patterns = config["package-data"]["meterd.console"]
    console = root / "server" / "meterd" / "console"
    files = [p.relative_to(console).as_posix() for d in ("templates", "static") for p in (console / d).iterdir()]
    assert "static/chart.umd.min.js" in files and "static/chart.js.LICENSE.md" in files
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []


def test_a_tables_share_is_of_the_whole_range_not_of_the_rows_shown():
    from meter.v1 import meter_pb2
    from meterd.console import pages

    top = meter_pb2.GetUsageResponse(
        rows=[meter_pb2.UsageRow(key=meter_pb2.UsageKey(subject="user:1"), stats=meter_pb2.UsageStats(cost_nanos=250))],
        totals=meter_pb2.UsageStats(cost_nanos=1000),
    )
    assert pages.table(top, "subject")[0]["share"] == 0.25
