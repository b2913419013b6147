"""What each console page shows, fetched through the client (several GetUsage reads in parallel)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from meter.v1 import common_pb2, meter_pb2
from meterd.console import fmt
from meterd.console.ranges import Range


def tokens(stats: meter_pb2.UsageStats) -> int:
    return stats.input_tokens + stats.output_tokens + stats.cached_read_tokens + stats.cache_write_tokens


def cards(current: meter_pb2.UsageStats, previous: meter_pb2.UsageStats) -> list[dict]:
    """The overview's headline figures, each with the change against the previous period."""

    def card(name, label, now, before, text, exact=""):
        return {"name": name, "label": label, "text": text, "exact": exact, "change": fmt.change(now, before)}

    return [
        card(
            "cost",
            "Cost",
            current.cost_nanos,
            previous.cost_nanos,
            fmt.usd(current.cost_nanos),
            fmt.usd_exact(current.cost_nanos),
        ),
        card("calls", "Calls", current.calls, previous.calls, fmt.number(current.calls)),
        card("tokens", "Tokens", tokens(current), tokens(previous), fmt.number(tokens(current))),
        card("error_rate", "Error rate", current.error_rate, previous.error_rate, fmt.percent(current.error_rate, 2)),
        card(
            "cache_hit_rate",
            "Cache hit rate",
            current.cache_hit_rate,
            previous.cache_hit_rate,
            fmt.percent(current.cache_hit_rate),
        ),
    ]


def _days(rng: Range) -> list[dt.datetime]:
    day = rng.start.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while day < rng.end:
        out.append(day)
        day += dt.timedelta(days=1)
    return out


def stacked_daily(rows, rng: Range, stack: str) -> dict:
    """Chart.js data: one dataset per model (or provider), a bar per UTC day, cost in dollars (floats
    are fine for drawing; every exact figure is in the tables)."""
    days = _days(rng)
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[float]] = {}
    for row in rows:
        name = getattr(row.key, stack) or "(none)"
        day = fmt.when(row.key.bucket_start)
        values = series.setdefault(name, [0.0] * len(days))
        if day in index:
            values[index[day]] += float(fmt.dollars(row.stats.cost_nanos))
    ranked = sorted(series.items(), key=lambda item: -sum(item[1]))
    return {"labels": [f"{d:%m-%d}" for d in days], "datasets": [{"label": n, "data": v} for n, v in ranked]}


def latency_chart(rows) -> dict:
    names = [row.key.model or "(none)" for row in rows]

    def ms(field):
        return [round((fmt.seconds(getattr(row.stats, field)) or 0) * 1000, 1) for row in rows]

    return {
        "labels": names,
        "datasets": [
            {"label": "p50 ms", "data": ms("latency_p50")},
            {"label": "p95 ms", "data": ms("latency_p95")},
            {"label": "p99 ms", "data": ms("latency_p99")},
        ],
    }


def error_chart(rows) -> dict:
    return {
        "labels": [row.key.provider or "(none)" for row in rows],
        "datasets": [{"label": "error rate %", "data": [round(100 * row.stats.error_rate, 2) for row in rows]}],
    }


def table(response: meter_pb2.GetUsageResponse, key: str) -> list[dict]:
    """Rows of a grouped GetUsage answer for the cost tables (and their CSV export); the share is of
    the whole range's cost (the totals), not of the rows shown."""
    total = response.totals.cost_nanos or 1
    out = []
    for row in response.rows:
        s = row.stats
        out.append(
            {
                "name": getattr(row.key, key) or "(none)",
                "cost_nanos": s.cost_nanos,
                "share": s.cost_nanos / total,
                "calls": s.calls,
                "tokens": tokens(s),
                "error_rate": s.error_rate,
                "p95": s.latency_p95,
            }
        )
    return out


TABLES = {"models": "model", "providers": "provider", "users": "subject", "labels": "label"}


# Over millions of calls these read per-subject rollups or raw calls (seconds, see docs/usage.md), so
# the pages load them apart (a fragment fetched by the page) and never hold the page up.
SLOW_TABLES = ("users", "labels")


async def table_rows(client, rng: Range, name: str, label_key: str = "", limit: int = 10) -> list[dict]:
    """One table alone, top `limit` by cost: the pages' deferred tables and the CSV exports."""
    group = TABLES[name]
    response = await client.usage(
        start=rng.start,
        end=rng.end,
        group_by=[group],
        label_key=label_key,
        order_by="cost",
        descending=True,
        limit=limit,
        timeout=60.0,
    )
    return table(response, "label_value" if group == "label" else group)


async def overview(client, rng: Range, stack: str = "model") -> dict:
    previous = rng.previous()
    span = {"start": rng.start, "end": rng.end}
    reads = [
        client.usage(**span, include_projection=True),
        client.usage(start=previous.start, end=previous.end),
        client.usage(**span, group_by=["time", stack], time_bucket="day"),
        client.usage(**span, group_by=["model"], order_by="cost", descending=True, limit=10),
        client.usage(**span, group_by=["provider"], order_by="cost", descending=True, limit=20),
    ]
    current, before, daily, models, providers = await asyncio.gather(*reads)
    charts = {
        "daily": stacked_daily(daily.rows, rng, stack),
        "latency": latency_chart(models.rows),
        "errors": error_chart(providers.rows),
    }
    return {
        "totals": current.totals,
        "previous": before.totals,
        "cards": cards(current.totals, before.totals),
        "projection": current.projection,
        "charts_json": json.dumps(charts),
        "tables": {
            "models": table(models, "model"),
            "providers": table(providers, "provider"),
        },
        "answered": (current.start, current.end),
    }


OUTCOMES = {
    "": common_pb2.OUTCOME_UNSPECIFIED,
    "success": common_pb2.OUTCOME_SUCCESS,
    "error": common_pb2.OUTCOME_ERROR,
}
CALL_FILTERS = ("subject", "subject_prefix", "provider", "model", "operation")


def call_filters(params) -> dict:
    """ListCalls' UsageFilter fields from the query string; labels as "k=v,k2=v2"."""
    filters = {name: params.get(name, "").strip()[:200] for name in CALL_FILTERS if params.get(name, "").strip()}
    outcome = params.get("outcome", "")
    if outcome in OUTCOMES and OUTCOMES[outcome]:
        filters["outcome"] = OUTCOMES[outcome]
    labels = {}
    for pair in params.get("labels", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            labels[key.strip()] = value.strip()
    if labels:
        filters["labels"] = labels
    return filters


def call_row(call: meter_pb2.CallRecord) -> dict:
    return {
        "call": call,
        "outcome": common_pb2.Outcome.Name(call.outcome).removeprefix("OUTCOME_").lower(),
        "source": common_pb2.CostSource.Name(call.cost_source).removeprefix("COST_SOURCE_").lower(),
        "tokens": call.usage.input_tokens
        + call.usage.output_tokens
        + call.usage.cached_read_tokens
        + call.usage.cache_write_tokens,
    }


async def find_call(client, call_id: str, at: dt.datetime, subject: str) -> meter_pb2.CallRecord | None:
    """One call by id: ListCalls has no id filter, so the list links carry its occurred_at and subject,
    and the detail reads that one microsecond."""
    response = await client.list_calls(start=at, end=at + dt.timedelta(microseconds=1), page_size=1000, subject=subject)
    return next((call for call in response.calls if call.call_id == call_id), None)
