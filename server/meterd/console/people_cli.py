"""`meter usage`, `meter calls`, `meter report`: Meter's figures for people (aligned tables, dollars)
and scripts (`--format json|csv|markdown`), through the public gRPC API. `add_commands` also adds
`meter limits` (console/limits_cli.py) and `meter recommend` (console/recommend_cli.py)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from meterd.config import parse_seconds
from meterd.console import fmt, limits_cli, pages, recommend_cli, report, usage_limits
from meterd.console.api_commands import add_connection_flags, add_filter_flags, call_filters, run
from meterd.console.ranges import PRESETS, RangeError, parse_instant, resolve
from meterd.console.tables import FORMATS, Column, render
from meterd.domain.clock import utc_now
from meterd.domain.pricing import usd_to_nanos

GROUPS = ("subject", "provider", "model", "operation", "label", "time")
ORDERS = ("cost", "calls", "total_tokens", "errors", "latency_p95")
USAGE_COLUMNS = [
    Column("cost", "cost", "usd"),
    Column("calls", "calls", "int"),
    Column("errors", "errors", "int"),
    Column("error_rate", "error rate", "pct"),
    Column("input_tokens", "input", "int"),
    Column("output_tokens", "output", "int"),
    Column("cached_read_tokens", "cached", "int"),
    Column("cache_hit_rate", "cache hit", "pct"),
    Column("latency_p50", "p50", "seconds"),
    Column("latency_p95", "p95", "seconds"),
]


def _stats_row(stats) -> dict:
    return {
        "cost": stats.cost_nanos,
        "calls": stats.calls,
        "errors": stats.errors,
        "error_rate": stats.error_rate,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "cached_read_tokens": stats.cached_read_tokens,
        "cache_hit_rate": stats.cache_hit_rate,
        "latency_p50": fmt.seconds(stats.latency_p50),
        "latency_p95": fmt.seconds(stats.latency_p95),
    }


def cmd_usage(args) -> None:
    groups = [g.strip() for g in (args.group_by or "").split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        sys.exit(f"meter: --group-by takes {', '.join(GROUPS)}; not {unknown[0]!r}")
    if "label" in groups and not args.label_key:
        sys.exit("meter: --group-by label needs --label-key")
    if args.limits and args.format not in ("table", "markdown"):
        sys.exit("meter: --limits adds a section to --format table or markdown only")

    async def work(client):
        rng = resolve(args.range, utc_now(), args.start or "", args.end or "")
        response = await client.usage(
            start=rng.start,
            end=rng.end,
            group_by=groups,
            label_key=args.label_key or "",
            time_bucket=args.bucket if "time" in groups else 0,
            order_by=args.order or ("cost" if args.top else 0),
            descending=bool(args.top) or args.order is not None,
            limit=args.top or 0,
            include_projection=args.projection,
            include_limits=args.limits,
            **call_filters(args),
        )
        keys = [
            Column(
                g if g != "label" else "label_value",
                g if g != "label" else args.label_key,
                "time" if g == "time" else "text",
            )
            for g in groups
        ]
        key_fields = {"time": "bucket_start", "label": "label_value"}
        rows = []
        for row in response.rows:
            item: dict[str, Any] = {c.name: None for c in keys}
            for g, col in zip(groups, keys, strict=True):
                value = getattr(row.key, key_fields.get(g, g))
                item[col.name] = fmt.when(value) if g == "time" else value
            rows.append(item | _stats_row(row.stats))
        total = {c.name: "" for c in keys} | _stats_row(response.totals)
        if keys:
            total[keys[0].name] = "TOTAL"
            rows.append(total)
        else:
            rows = [total]
        text = render(keys + USAGE_COLUMNS, rows, args.format)
        if args.projection and args.format == "table":
            p = response.projection
            text += (
                f"\nmonth to date {fmt.usd(p.month_to_date_cost_nanos)}, run rate {fmt.usd(p.daily_run_rate_cost_nanos)}/day "
                f"over {p.basis_days} days: projected month {fmt.usd(p.projected_month_cost_nanos)}\n"
            )
        if args.format == "table":
            text = f"{fmt.utc(response.start)} – {fmt.utc(response.end)}\n" + text
        if args.limits:
            text += usage_limits.limits_section(response, args.format)
        return text

    run(args, work)


CALL_COLUMNS = [
    Column("occurred_at", "occurred", "time"),
    Column("call_id", "call"),
    Column("subject", "subject"),
    Column("provider", "provider"),
    Column("model", "model"),
    Column("outcome", "outcome"),
    Column("tokens", "tokens", "int"),
    Column("cost", "cost", "usd"),
    Column("latency", "latency", "seconds"),
]


def _span(text: str, flag: str) -> dt.timedelta:
    try:
        return dt.timedelta(seconds=parse_seconds(text))
    except ValueError:
        raise RangeError(f"{flag} {text!r}: expected a duration like 7d, 12h or 30m") from None


def _search(args) -> dict:
    """ListCalls' minimums and order from the flags (a cost in dollars, a latency in seconds)."""
    try:
        min_cost = usd_to_nanos(args.min_cost) if args.min_cost else 0
    except ValueError as exc:
        raise RangeError(f"--min-cost: {exc}") from None
    return {
        "min_cost_nanos": min_cost,
        "min_latency": args.min_latency,
        "min_total_tokens": args.min_tokens,
        "min_cached_read_tokens": args.min_cached_tokens,
        "error_code": args.error_code,
        "order_by": args.order,
    }


def cmd_calls(args) -> None:
    async def work(client):
        filters = call_filters(args) | _search(args)
        if args.outcome:
            filters["outcome"] = pages.OUTCOMES[args.outcome]
        start = parse_instant(args.start) if args.start else None
        end = parse_instant(args.end) if args.end else None
        if args.last:
            end = end or utc_now()
            start = end - _span(args.last, "--last")
        rows: list[dict[str, Any]] = []
        token = ""
        while len(rows) < args.limit:
            page = await client.list_calls(
                start=start, end=end, page_size=min(args.limit - len(rows), 1000), page_token=token, **filters
            )
            for call in page.calls:
                row = pages.call_row(call)
                rows.append(
                    {
                        "occurred_at": call.occurred_at,
                        "call_id": call.call_id,
                        "subject": call.subject,
                        "provider": call.provider,
                        "model": call.model,
                        "outcome": row["outcome"] + (f" ({call.error_code})" if call.error_code else ""),
                        "tokens": row["tokens"],
                        "cost": call.cost_nanos,
                        "latency": fmt.seconds(call.latency),
                    }
                )
            token = page.next_page_token
            if not token:
                break
        return render(CALL_COLUMNS, rows, args.format)

    run(args, work)


def cmd_report(args) -> None:
    async def work(client):
        at = parse_instant(args.at) if args.at else utc_now()
        rep = await report.build(client, args.period, at, args.label_key or "")
        if args.format == "csv":
            return report.csv_text(rep)
        if args.format == "html":
            from meterd.console.app import template_environment

            page = template_environment().get_template("report_standalone.html")
            return page.render(report=rep, summary=report.summary(rep)) + "\n"
        return report.markdown(rep)

    run(args, work)


def add_commands(sub, _meter_arguments=None) -> None:
    usage = sub.add_parser("usage", help="spend and usage over a range, grouped and ranked (GetUsage)")
    add_connection_flags(usage, "read")
    usage.add_argument(
        "--range", default="7d", choices=list(PRESETS), help="today, 7d, 30d, month or custom (with --start)"
    )
    usage.add_argument("--start", help="custom range start, YYYY-MM-DD[THH:MM] UTC")
    usage.add_argument("--end", help="custom range end (default now)")
    usage.add_argument("--group-by", help=f"comma-separated: {', '.join(GROUPS)}")
    usage.add_argument("--label-key", help="the label to group by (with --group-by label)")
    usage.add_argument(
        "--bucket", default="day", choices=["hour", "day", "week", "month"], help="time bucket for --group-by time"
    )
    usage.add_argument("--top", type=int, default=0, help="only the N largest groups (by --order, default cost)")
    usage.add_argument("--order", choices=ORDERS, help="order groups by this, largest first")
    usage.add_argument("--projection", action="store_true", help="add the month-end projection")
    usage.add_argument(
        "--limits",
        action="store_true",
        help="add a limits section: the limits the filters select, used and remaining now and when "
        "each runs out at its window's rate so far (table or markdown)",
    )
    add_filter_flags(usage)
    usage.add_argument("--format", default="table", choices=FORMATS)
    usage.set_defaults(console_func=cmd_usage)

    limits_cli.add_command(sub)

    calls = sub.add_parser("calls", help="search recorded calls, newest, dearest or slowest first (ListCalls)")
    add_connection_flags(calls, "read")
    add_filter_flags(calls)
    calls.add_argument("--outcome", choices=["success", "error"])
    calls.add_argument("--error-code", default="", help="only calls recorded with this error code (e.g. 429)")
    calls.add_argument("--min-cost", default="", help="only calls costing at least this many dollars (e.g. 0.10)")
    calls.add_argument("--min-latency", type=float, help="only calls at least this many seconds slow")
    calls.add_argument("--min-tokens", type=int, default=0, help="only calls with at least this many tokens in all")
    calls.add_argument(
        "--min-cached-tokens", type=int, default=0, help="only calls with at least this many cached-read tokens"
    )
    calls.add_argument(
        "--order", default="newest", choices=["newest", "cost", "latency"], help="newest, dearest or slowest first"
    )
    calls.add_argument("--start", help="YYYY-MM-DD[THH:MM] UTC")
    calls.add_argument("--end", help="YYYY-MM-DD[THH:MM] UTC")
    calls.add_argument("--last", help="the range ending at --end (default now) this long, e.g. 7d, 12h, 30m")
    calls.add_argument("--limit", type=int, default=50, help="at most this many calls (default 50)")
    calls.add_argument("--format", default="table", choices=FORMATS)
    calls.set_defaults(console_func=cmd_calls)

    recommend_cli.add_command(sub)

    rep = sub.add_parser("report", help="the last whole day's, week's or month's report")
    add_connection_flags(rep, "read")
    rep.add_argument("--period", default="day", choices=["day", "week", "month"])
    rep.add_argument("--label-key", help="also rank the values of this label (e.g. conversation; reads raw calls)")
    rep.add_argument("--at", help="report the period before this instant instead of now (YYYY-MM-DD[THH:MM] UTC)")
    rep.add_argument("--format", default="markdown", choices=["markdown", "html", "csv"])
    rep.set_defaults(console_func=cmd_report)
