"""`meter recommend`: GetRecommendations for people (tables, dollars) and scripts (json, csv): what
the range's usage would have cost on other models, what caching saved and would save, the error and
latency hot spots. Every figure is the server's, computed from the data and the price catalog."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from google.protobuf import json_format

from meterd.console import fmt
from meterd.console.api_commands import add_connection_flags, add_filter_flags, call_filters, run
from meterd.console.ranges import PRESETS, RangeError, resolve
from meterd.console.tables import FORMATS, Column, render
from meterd.domain.clock import utc_now

MODEL_COLUMNS = [
    Column("model", "model"),
    Column("calls", "calls", "int"),
    Column("recorded", "recorded", "usd"),
    Column("catalog", "at list price", "usd"),
    Column("alternative", "alternative"),
    Column("alternative_cost", "would cost", "usd"),
    Column("saving", "saving", "usd"),
]
CACHE_COLUMNS = [
    Column("model", "model"),
    Column("cache_hit_rate", "cache hit", "pct"),
    Column("cache_savings", "caching saved", "usd"),
    Column("added", "tokens to cache", "int"),
    Column("target_saving", "would save", "usd"),
]
HOT_COLUMNS = [
    Column("where", "model or provider"),
    Column("calls", "calls", "int"),
    Column("errors", "errors", "int"),
    Column("error_rate", "error rate", "pct"),
    Column("latency_p95", "p95", "seconds"),
]


def basis_points(text: str | None) -> int | None:
    """A percentage ("50", "12.5") in basis points (5000, 1250)."""
    if text is None:
        return None
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        raise RangeError(f"--target-hit-rate {text!r}: expected a percentage like 50 or 12.5") from None
    if value != value.to_integral_value() or not 0 <= value <= 10_000:
        raise RangeError(f"--target-hit-rate {text!r}: a percentage from 0 to 100 with at most 2 decimals")
    return int(value)


def model_rows(reply) -> list[dict]:
    rows = []
    for m in reply.models:
        base = {"model": f"{m.provider}/{m.model}", "calls": m.calls, "recorded": m.recorded_cost_nanos,
                "catalog": m.catalog_cost_nanos if m.price_id else None}  # fmt: skip
        if not m.alternatives:
            rows.append(base | {"alternative": "", "alternative_cost": None, "saving": None})
        for i, alt in enumerate(m.alternatives):
            first = base if i == 0 else {"model": "", "calls": None, "recorded": None, "catalog": None}
            rows.append(first | {"alternative": f"{alt.provider}/{alt.model}", "alternative_cost": alt.cost_nanos,
                                 "saving": alt.saving_nanos})  # fmt: skip
    return rows


def _hot(spots) -> list[dict]:
    return [
        {
            "where": f"{h.provider}/{h.model}" if h.model else h.provider,
            "calls": h.calls,
            "errors": h.errors,
            "error_rate": h.error_rate,
            "latency_p95": fmt.seconds(h.latency_p95),
        }  # fmt: skip
        for h in spots
    ]


def text_report(reply, form: str) -> str:
    cache = reply.cache
    target = cache.target_cache_hit_rate_bp if cache.HasField("target_cache_hit_rate_bp") else None
    cache_rows = [
        {
            "model": f"{m.provider}/{m.model}",
            "cache_hit_rate": m.cache_hit_rate,
            "cache_savings": m.cache_savings_nanos,
            "added": m.target_cached_tokens_added if target is not None else None,
            "target_saving": m.target_cache_saving_nanos if target is not None else None,
        }  # fmt: skip
        for m in reply.models
    ]
    parts = [
        f"{fmt.utc(reply.start)} – {fmt.utc(reply.end)}, list prices of {fmt.utc(reply.priced_at)}\n",
        "\nCheaper models (the same tokens at each model's price)\n" + render(MODEL_COLUMNS, model_rows(reply), form),
        f"\nCaching: hit rate {fmt.percent(cache.cache_hit_rate, 2)} of {fmt.number(cache.input_tokens + cache.cached_read_tokens + cache.cache_write_tokens)} "
        f"input tokens, saved {fmt.usd(cache.cache_savings_nanos)}"
        + (f"; at {target / 100:g}% it would save {fmt.usd(cache.target_cache_saving_nanos)} more" if target is not None else "")
        + "\n" + render(CACHE_COLUMNS, cache_rows, form),
        "\nHighest error rates\n" + render(HOT_COLUMNS, _hot([*reply.error_rate_models, *reply.error_rate_providers]), form),
        "\nSlowest (p95)\n" + render(HOT_COLUMNS, _hot([*reply.latency_models, *reply.latency_providers]), form),
    ]  # fmt: skip
    return "".join(parts)


def cmd_recommend(args) -> None:
    async def work(client):
        rng = resolve(args.range, utc_now(), args.start or "", args.end or "")
        reply = await client.recommendations(
            start=rng.start, end=rng.end, candidate_models=args.candidate or [], max_alternatives=args.alternatives,
            target_cache_hit_rate_bp=basis_points(args.target_hit_rate), max_hot_spots=args.hot_spots,
            min_calls=args.min_calls, **call_filters(args),
        )  # fmt: skip
        if args.format == "json":
            return json_format.MessageToJson(reply, preserving_proto_field_name=True) + "\n"
        if args.format == "csv":
            return render(MODEL_COLUMNS, model_rows(reply), "csv")
        return text_report(reply, args.format)

    run(args, work)


def add_command(sub) -> None:
    rec = sub.add_parser(
        "recommend", help="cheaper models, caching savings and hot spots over a range (GetRecommendations)"
    )
    add_connection_flags(rec, "read")
    rec.add_argument("--range", default="30d", choices=list(PRESETS), help="today, 7d, 30d, month or custom")
    rec.add_argument("--start", help="custom range start, YYYY-MM-DD[THH:MM] UTC")
    rec.add_argument("--end", help="custom range end (default now)")
    add_filter_flags(rec)
    rec.add_argument(
        "--candidate", action="append", metavar="PROVIDER/MODEL",
        help="price the usage on this model (repeatable); default: every catalog model of the same provider",
    )  # fmt: skip
    rec.add_argument("--alternatives", type=int, default=0, help="alternatives per model (default 5)")
    rec.add_argument("--target-hit-rate", metavar="PERCENT", help="price this cache hit rate, e.g. 50 (%% of input)")
    rec.add_argument("--hot-spots", type=int, default=0, help="rows per hot-spot list (default 5)")
    rec.add_argument("--min-calls", type=int, default=0, help="ignore models and providers with fewer calls")
    rec.add_argument("--format", default="table", choices=FORMATS)
    rec.set_defaults(console_func=cmd_recommend)
