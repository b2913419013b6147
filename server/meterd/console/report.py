"""Usage reports for a day, week or month (the seeds' daily and monthly reports): totals with the
change against the period before, cost by model and provider, top users (and top values of a label,
e.g. conversations), errors, the trend, the month-end projection and a few recommendations.
Rendered as markdown, HTML (the console's page) or CSV."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from meter.v1 import meter_pb2
from meterd.console import fmt, pages
from meterd.console.ranges import Range, report_range


@dataclass
class Report:
    period: str
    range: Range
    totals: meter_pb2.UsageStats
    previous: meter_pb2.UsageStats
    projection: meter_pb2.Projection
    models: list[dict]
    providers: list[dict]
    users: list[dict] | None
    labels: list[dict]
    label_key: str
    errors: list[dict]
    trend: list[tuple[dt.datetime, int, int]]  # (bucket start, cost nanos, calls)
    recommendations: list[str] = field(default_factory=list)


def recommendations(rep: Report) -> list[str]:
    """Plain rules of thumb from the figures; each names the number that triggered it."""
    out: list[str] = []
    t = rep.totals
    if t.calls and t.error_rate >= 0.05:
        out.append(
            f"Error rate is {fmt.percent(t.error_rate)}: look at the errors by model below before retries add cost."
        )
    prompt = t.input_tokens + t.cached_read_tokens + t.cache_write_tokens
    if prompt > 100_000 and t.cache_hit_rate < 0.2:
        out.append(
            f"Cache hit rate is {fmt.percent(t.cache_hit_rate)}: stable prompt prefixes would let providers cache more input."
        )
    if rep.models and rep.models[0]["share"] >= 0.8 and len(rep.models) > 1:
        top = rep.models[0]
        out.append(
            f"{top['name']} is {fmt.percent(top['share'])} of the cost: check whether a cheaper model serves part of that traffic."
        )
    if t.unpriced_calls:
        out.append(f"{fmt.number(t.unpriced_calls)} calls had no price (counted at $0): add prices for their models.")
    if rep.previous.cost_nanos and t.cost_nanos > 1.5 * rep.previous.cost_nanos:
        out.append(f"Cost rose {fmt.change(t.cost_nanos, rep.previous.cost_nanos)} against the previous {rep.period}.")
    return out


async def build(client, period: str, now: dt.datetime, label_key: str = "", *, with_users: bool = True) -> Report:
    """with_users=False leaves `users` None: the console's page fetches that table apart (slow on
    millions of calls, see pages.SLOW_TABLES)."""
    rng = report_range(period, now)
    before = rng.previous()
    span = {"start": rng.start, "end": rng.end}
    bucket = "hour" if period == "day" else "day"
    reads = [
        client.usage(**span, include_projection=True),
        client.usage(start=before.start, end=before.end),
        client.usage(**span, group_by=["model"], order_by="cost", descending=True, limit=50),
        client.usage(**span, group_by=["provider"], order_by="cost", descending=True, limit=50),
        client.usage(**span, group_by=["provider", "model"], order_by="errors", descending=True, limit=20),
        client.usage(**span, group_by=["time"], time_bucket=bucket),
    ]
    slow = {"order_by": "cost", "descending": True, "limit": 10, "timeout": 60.0}
    if with_users:
        reads.append(client.usage(**span, group_by=["subject"], **slow))
    if label_key:
        reads.append(client.usage(**span, group_by=["label"], label_key=label_key, **slow))
    answers = await asyncio.gather(*reads)
    current, previous, models, providers, errors, trend = answers[:6]
    users = answers[6] if with_users else None
    rep = Report(
        period=period,
        range=rng,
        totals=current.totals,
        previous=previous.totals,
        projection=current.projection,
        models=pages.table(models, "model"),
        providers=pages.table(providers, "provider"),
        users=pages.table(users, "subject") if users is not None else None,
        labels=pages.table(answers[-1], "label_value") if label_key else [],
        label_key=label_key,
        errors=[
            {
                "provider": r.key.provider,
                "model": r.key.model,
                "errors": r.stats.errors,
                "calls": r.stats.calls,
                "rate": r.stats.error_rate,
            }
            for r in errors.rows
            if r.stats.errors
        ],
        # Rows of a time-bucketed query all have a bucket start.
        trend=[(at, r.stats.cost_nanos, r.stats.calls) for r in trend.rows if (at := fmt.when(r.key.bucket_start))],
    )
    rep.recommendations = recommendations(rep)
    return rep


def summary(rep: Report) -> list[tuple[str, str, str]]:
    t, p = rep.totals, rep.previous
    return [
        ("Cost", fmt.usd(t.cost_nanos), fmt.change(t.cost_nanos, p.cost_nanos)),
        ("Calls", fmt.number(t.calls), fmt.change(t.calls, p.calls)),
        ("Tokens", fmt.number(pages.tokens(t)), fmt.change(pages.tokens(t), pages.tokens(p))),
        ("Errors", f"{fmt.number(t.errors)} ({fmt.percent(t.error_rate, 2)})", fmt.change(t.errors, p.errors)),
        ("Cache hit rate", fmt.percent(t.cache_hit_rate), fmt.change(t.cache_hit_rate, p.cache_hit_rate)),
        ("Latency p95", fmt.latency(t.latency_p95), ""),
        ("Projected month", fmt.usd(rep.projection.projected_month_cost_nanos), ""),
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines + [""]


def _cost_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            r["name"],
            fmt.usd(r["cost_nanos"]),
            fmt.percent(r["share"]),
            fmt.number(r["calls"]),
            fmt.percent(r["error_rate"], 2),
        ]
        for r in rows
    ]


def markdown(rep: Report) -> str:
    r = rep.range
    head = ["name", "cost", "share", "calls", "error rate"]
    out = [f"# Meter {rep.period} report: {r.start:%Y-%m-%d %H:%M} – {r.end:%Y-%m-%d %H:%M} UTC", ""]
    out += ["## Totals", ""] + _md_table(["", f"this {rep.period}", "vs previous"], [list(x) for x in summary(rep)])
    out += ["## By model", ""] + _md_table(head, _cost_rows(rep.models))
    out += ["## By provider", ""] + _md_table(head, _cost_rows(rep.providers))
    out += ["## Top users", ""] + _md_table(head, _cost_rows(rep.users or []))
    if rep.label_key:
        out += [f"## Top {rep.label_key} values", ""] + _md_table(head, _cost_rows(rep.labels))
    out += ["## Errors", ""] + _md_table(
        ["provider", "model", "errors", "calls", "rate"],
        [
            [e["provider"], e["model"], fmt.number(e["errors"]), fmt.number(e["calls"]), fmt.percent(e["rate"], 2)]
            for e in rep.errors
        ],
    )
    out += ["## Trend", ""] + _md_table(
        ["from (UTC)", "cost", "calls"], [[f"{at:%Y-%m-%d %H:%M}", fmt.usd(c), fmt.number(n)] for at, c, n in rep.trend]
    )
    pr = rep.projection
    out += [
        "## Projection",
        "",
        f"Month to date {fmt.usd(pr.month_to_date_cost_nanos)}; daily run rate {fmt.usd(pr.daily_run_rate_cost_nanos)} "
        f"over {pr.basis_days} days; projected month {fmt.usd(pr.projected_month_cost_nanos)}.",
        "",
        "## Recommendations",
        "",
    ]
    out += [f"- {line}" for line in rep.recommendations] or ["_none_"]
    return "\n".join(out) + "\n"


def csv_text(rep: Report) -> str:
    """One CSV with a `section` column, exact dollars (all nine decimals) for spreadsheets."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "name", "cost_usd", "calls", "tokens", "error_rate"])
    t = rep.totals
    w.writerow(
        ["totals", rep.period, f"{fmt.dollars(t.cost_nanos):f}", t.calls, pages.tokens(t), f"{t.error_rate:.6f}"]
    )
    for section, rows in (
        ("model", rep.models),
        ("provider", rep.providers),
        ("user", rep.users or []),
        ("label", rep.labels),
    ):
        for r in rows:
            w.writerow(
                [
                    section,
                    r["name"],
                    f"{fmt.dollars(r['cost_nanos']):f}",
                    r["calls"],
                    r["tokens"],
                    f"{r['error_rate']:.6f}",
                ]
            )
    for at, cost, calls in rep.trend:
        w.writerow(["trend", at.isoformat(), f"{fmt.dollars(cost):f}", calls, "", ""])
    w.writerow(["projection", "month", f"{fmt.dollars(rep.projection.projected_month_cost_nanos):f}", "", "", ""])
    return buf.getvalue()
