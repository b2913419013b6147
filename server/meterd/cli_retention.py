"""`meter retention --older-than`: drop old raw calls, whole months at a time."""

from __future__ import annotations

import argparse
import asyncio
import sys

from meterd.cli_args import instant
from meterd.cli_db import database, with_database
from meterd.cli_progress import Progress
from meterd.config import Config, add_flags


def cmd_retention(config: Config, args: argparse.Namespace) -> None:
    """Drop raw calls older than --older-than, a whole month at a time, with the history of those
    months (ended reservations, alerts, delivered webhooks, denial counts); rollups are kept. The
    label rollups' admitted values go with the raw calls of their days (store/admitted_values.py)."""
    import datetime as dt

    from meterd.config import parse_seconds
    from meterd.store.admitted_values import prune_admitted_values
    from meterd.store.partitions import PartitionStore

    try:
        older_than = parse_seconds(args.older_than)
    except ValueError:
        sys.exit(f"meter: --older-than {args.older_than!r}: expected a duration like 90d")
    # Calls may still be recorded back to the back-fill horizon: dropping a month they can land in
    # would let a dropped call_id be recorded again, into calls_default, where it blocks that month's
    # partition for good. Whole months go, so what is kept reaches up to a month further back.
    if older_than < config.backfill_horizon:
        sys.exit(
            f"meter: --older-than {args.older_than} is shorter than the back-fill horizon "
            f"({config.backfill_horizon / 86400:g} days, --backfill-horizon / METER_BACKFILL_HORIZON): calls may "
            "still be recorded that far back; give at least that (retention keeps up to one more month)"
        )
    now = args.now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=older_than)
    bar = Progress("retention: steps")

    async def run(db):
        dropped, boundary, pruned = await PartitionStore(db).drop_older_than(
            cutoff, now=args.now, dry_run=args.dry_run, progress=bar
        )
        # With the raw calls, not before: RepriceCalls maps a retained call to its admitted value (and
        # no call can be recorded there: older_than >= the back-fill horizon, checked above).
        return dropped, boundary, pruned, await prune_admitted_values(db, boundary, dry_run=args.dry_run)

    with database(config) as url, bar:
        dropped, boundary, pruned, admitted = asyncio.run(with_database(url, run))
    verb = "would drop" if args.dry_run else "dropped"
    print(f"{verb} {len(dropped)} monthly partition(s){': ' + ', '.join(dropped) if dropped else ''}")
    print(f"raw calls before {boundary:%Y-%m-%d} {'would be' if args.dry_run else 'are'} gone; rollups are kept")
    print(f"{'would prune' if args.dry_run else 'pruned'} history before {boundary:%Y-%m-%d}: "
          + ", ".join(f"{n} {table}" for table, n in pruned.items()))  # fmt: skip
    print(f"{'would prune' if args.dry_run else 'pruned'} label admitted values before {boundary:%Y-%m-%d} "
          "(with their days' raw calls): " + ", ".join(f"{n} {table}" for table, n in admitted.items()))  # fmt: skip


def add_parser(sub) -> None:
    retention = sub.add_parser("retention", help="drop raw calls older than a duration, whole months at a time")
    retention.add_argument(
        "--older-than",
        required=True,
        help="e.g. 90d: months that ended before now - 90 days (>= the back-fill horizon)",
    )
    retention.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    retention.add_argument(
        "--now", type=instant, help="act as if it were this ISO date-time (UTC), e.g. with --dry-run to preview"
    )
    add_flags(retention, ("database_url", "data_dir", "log_level", "backfill_horizon"))
