"""A report (console/report.py) as a scheduled digest's message: the totals against the period
before, the top models and users by cost, the month-end projection and the recommendations, in
dollars, short enough for every channel (Discord's 2,000 characters, PagerDuty's 1,024 summary)."""

from __future__ import annotations

from meterd.console import fmt
from meterd.console.report import Report, summary

TOP = 3
MAX_CHARS = 1800
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}


def _period(rep: Report) -> str:
    r = rep.range
    if rep.period == "day":
        return f"{r.start:%Y-%m-%d}"
    if rep.period == "month":
        return f"{r.start:%B %Y}"
    return f"week of {r.start:%Y-%m-%d}"


def _top(title: str, rows: list[dict] | None) -> list[str]:
    if not rows:
        return []
    cells = [f"{r['name']} {fmt.usd(r['cost_nanos'])} ({fmt.percent(r['share'])})" for r in rows[:TOP]]
    return [f"{title}: " + ", ".join(cells)]


def _figure(name: str, value: str, change: str, period: str) -> str:
    if change in ("", "—"):  # nothing to compare with
        return f"{name}: {value}"
    if change == "new":
        return f"{name}: {value} (none the {period} before)"
    return f"{name}: {value} ({change} vs the {period} before)"


def digest_text(rep: Report) -> str:
    lines = [f"Meter {_ADJECTIVE[rep.period]} report, {_period(rep)} (UTC)"]
    lines += [_figure(name, value, change, rep.period) for name, value, change in summary(rep)[:4]]
    lines += _top("Top models", rep.models) + _top("Top users", rep.users)
    lines.append(f"Projected month: {fmt.usd(rep.projection.projected_month_cost_nanos)}")
    lines += [f"- {tip}" for tip in rep.recommendations]
    text = "\n".join(lines)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
