"""`meter limits` (list, set, delete): the tenant's limits with their current use, through Meter's
gRPC API with an admin key."""

from __future__ import annotations

from meterd.console import limit_form, limits_view
from meterd.console.api_commands import add_connection_flags, run
from meterd.console.tables import FORMATS, Column, render
from meterd.domain.clock import utc_now

LIMIT_COLUMNS = [
    Column("id", "limit"),
    Column("metric", "metric"),
    Column("window", "window"),
    Column("action", "action"),
    Column("used", "used"),
    Column("max", "max"),
    Column("percent", "percent", "pct"),
    Column("reset_at", "resets", "time"),
    Column("runout_at", "runs out", "time"),
    Column("partition", "partition"),
]


def cmd_limits(args) -> None:
    if getattr(args, "limits_command", None) == "set":
        return cmd_limit_set(args)
    if getattr(args, "limits_command", None) == "delete":
        return run(args, lambda client: _delete_limit(client, args.id))

    async def work(client):
        uses = await limits_view.limits_with_use(client, utc_now())
        machine = args.format in ("json", "csv")
        rows = [
            {
                "id": u.limit.id,
                "metric": u.metric,
                "window": u.window,
                "action": u.action,
                "used": u.used if machine else u.used_text + (" ≈" if u.approximate else ""),
                "max": u.limit.max if machine else u.max_text,
                "percent": u.percent / 100,
                "reset_at": u.reset_at,
                "runout_at": u.runout_at,
                "partition": u.partition_note,
            }
            for u in uses
        ]
        return render(LIMIT_COLUMNS, rows, args.format)

    run(args, work)


async def _delete_limit(client, limit_id: str) -> str:
    await client.delete_limit(limit_id)
    return f"deleted limit {limit_id}\n"


def cmd_limit_set(args) -> None:
    fields = {name: getattr(args, name) or "" for name in LIMIT_FIELDS}
    fields["metric"] = args.metric.replace("_", " ")
    fields["thresholds"] = args.alert_at or ""

    async def work(client):
        reply = await client.set_limit(limit_form.limit_from_form(fields))
        return f"{'created' if reply.created else 'replaced'} limit {reply.limit.id}\n"

    run(args, work)


LIMIT_FIELDS = (
    "id",
    "description",
    "metric",
    "max",
    "window",
    "seconds",
    "partition",
    "action",
    "subject",
    "subject_prefix",
    "provider",
    "model",
    "operation",
)


def add_command(sub) -> None:
    limits = sub.add_parser(
        "limits", help="limits with their current use, percent, reset and run-out; set, delete (admin key)"
    )
    add_connection_flags(limits, "admin")
    limits.add_argument("--format", default="table", choices=FORMATS)
    limits.set_defaults(console_func=cmd_limits)
    limits_sub = limits.add_subparsers(dest="limits_command")
    listing = limits_sub.add_parser("list", help="the same as plain `meter limits`")
    add_connection_flags(listing, "admin")
    listing.add_argument("--format", default="table", choices=FORMATS)
    setting = limits_sub.add_parser("set", help="create or replace a limit (by id); a cost max is in dollars")
    add_connection_flags(setting, "admin")
    setting.add_argument("id")
    setting.add_argument("--metric", required=True, choices=[m.replace(" ", "_") for m in limit_form.METRIC_NAMES])
    setting.add_argument("--max", required=True, help="the maximum: dollars for cost (e.g. 25 or 0.50), else a count")
    setting.add_argument("--window", default="day", choices=list(limit_form.WINDOW_NAMES))
    setting.add_argument("--seconds", help="the duration of a fixed or sliding window")
    setting.add_argument("--partition", default="shared", choices=list(limit_form.PARTITIONS))
    setting.add_argument("--action", default="deny", choices=list(limit_form.ACTIONS))
    setting.add_argument("--description", default="")
    setting.add_argument("--alert-at", help="alert thresholds in percent, e.g. 80,100")
    for name in ("subject", "subject_prefix", "provider", "model", "operation"):
        setting.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default="", help=f"only calls with this {name.replace('_', ' ')}"
        )
    deleting = limits_sub.add_parser("delete", help="delete a limit by id")
    add_connection_flags(deleting, "admin")
    deleting.add_argument("id")
