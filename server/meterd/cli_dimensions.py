"""`meter dimensions set | list | delete | backfill`: a tenant's declared label dimensions, directly
in the database (like keys and prices). See docs/usage.md, "Label and error-code rollups"."""

from __future__ import annotations

import argparse
import asyncio

from meterd.config import Config, add_flags


def add_parser(sub, instant) -> None:
    """`instant` parses an ISO date or date-time (cli._instant, passed in, not imported back)."""
    dims = sub.add_parser("dimensions", help="declare label keys as dimensions (rolled up, fast, kept after retention)")
    dims_sub = dims.add_subparsers(dest="dimensions_command", required=True)
    setting = dims_sub.add_parser(
        "set",
        help="declare a label key as a dimension (or change its bound)",
        description="From now on every recorded call is added to hourly and daily rollups by its value of "
        "this label. Per UTC day the first --max-values-per-day distinct values are kept; later new values "
        "of that day are added under __other__. Use `backfill` for calls recorded before.",
    )
    setting.add_argument("key", help="the label key, e.g. conversation")
    setting.add_argument(
        "--max-values-per-day", type=int, default=0, help="distinct values kept per UTC day, 1..100000 (default 10000)"
    )
    listing = dims_sub.add_parser("list", help="the declared dimensions")
    deleting = dims_sub.add_parser("delete", help="forget a dimension and delete its rollups")
    deleting.add_argument("key")
    backfill = dims_sub.add_parser(
        "backfill",
        help="recompute a dimension's rollups for whole UTC days from the raw calls still retained",
        description="Recomputes one UTC day per transaction (recording for the tenant waits for each). "
        "Days older than the oldest retained raw call keep their rollups.",
    )
    target = backfill.add_mutually_exclusive_group(required=True)
    target.add_argument("--key", default="", help="a declared label key")
    target.add_argument("--error-codes", action="store_true", help="the error-code rollups instead")
    backfill.add_argument("--from", dest="start", required=True, type=instant, help="first day (inclusive)")
    backfill.add_argument("--to", dest="end", required=True, type=instant, help="end (exclusive; whole days)")
    for p in (setting, listing, deleting, backfill):
        p.add_argument("--tenant", required=True)
        add_flags(p, ("database_url", "data_dir", "log_level"))


def run(config: Config, args: argparse.Namespace, database, with_database, validate_tenant) -> None:
    """`database` and `with_database` are cli.database and cli._with_database."""
    from meterd.service.dimensions import DimensionAdmin
    from meterd.store.label_rollups import LabelRollupStore

    tenant = validate_tenant(args.tenant)
    command = args.dimensions_command

    def action(db):
        admin = DimensionAdmin(LabelRollupStore(db))
        if command == "set":
            return admin.set(tenant, args.key, args.max_values_per_day)
        if command == "list":
            return admin.list(tenant)
        if command == "delete":
            return admin.delete(tenant, args.key)
        return admin.backfill(tenant, args.key, args.error_codes, args.start, args.end)

    with database(config) as url:
        result = asyncio.run(with_database(url, action, statement_timeout=600.0))
    if command == "set":
        stored, created = result
        print(f"{'declared' if created else 'updated'}\t{stored.label_key}\tmax {stored.max_values_per_day}/day")
    elif command == "list":
        for d in result:
            print(f"{d.label_key}\tmax {d.max_values_per_day}/day\tsince {d.created_at.isoformat()}")
    elif command == "delete":
        print(f"deleted {args.key}")
    elif result.days:
        print(f"back-filled {len(result.days)} days from {result.days[0].date()} to {result.days[-1].date()}")
    else:
        print("back-filled 0 days: no raw call of the range is retained")
