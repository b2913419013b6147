"""`meter prices sync`: import the genai-prices catalog (installed, or a data file) into the shared prices."""

from __future__ import annotations

import argparse
import asyncio
import sys

from meterd.config import Config, add_flags

SHOWN = 20  # changed versions listed per kind; the counts are always complete


def add_sync_parser(prices_sub) -> None:
    sync = prices_sub.add_parser(
        "sync",
        help="import the installed genai-prices catalog (or --from FILE) into the shared catalog",
        description="Make the shared catalog the prices of the installed genai-prices package (after "
        "`pip install -U genai-prices`), or of a data file in its JSON format (its published data.json). "
        "Prints what is added, repriced and removed; removed and repriced versions are retired, not "
        "deleted, so recorded calls keep their price_id. Tenant prices are not touched.",
    )
    sync.add_argument("--dry-run", action="store_true", help="only show what would change")
    sync.add_argument("--from", dest="source_file", metavar="FILE", help="a genai-prices data.json file")
    sync.add_argument("--version", dest="source_version", default="", help="the version to record for --from")
    add_flags(sync, ("database_url", "data_dir", "log_level"))


def _label(p) -> str:
    tier = f" [{p.service_tier}]" if p.service_tier else ""
    return f"{p.provider}/{p.model_pattern}{tier} from {p.effective_from.date().isoformat()}"


def cmd_sync(config: Config, args: argparse.Namespace, database, with_database) -> None:
    """`database` and `with_database` are cli.database and cli._with_database (passed in, not imported back)."""
    from meterd.domain import genai_catalog
    from meterd.domain.pricing import nanos_to_usd
    from meterd.service.prices import PriceAdmin, PriceBook
    from meterd.store.prices import PriceStore

    try:
        if args.source_file:
            conversion = genai_catalog.from_file(args.source_file, args.source_version)
        else:
            conversion = genai_catalog.installed()
    except (OSError, ValueError) as exc:
        sys.exit(f"meter: {args.source_file}: {str(exc)[:500]}")

    from meterd.cli_progress import Progress

    bar = Progress("prices sync: versions written")

    def action(db):
        return PriceAdmin(PriceBook(PriceStore(db))).sync(conversion, dry_run=args.dry_run, progress=bar)

    with database(config) as url, bar:
        diff = asyncio.run(with_database(url, action, statement_timeout=120.0))
    print(conversion.summary())
    for name, rows in (("added", diff.added), ("removed", diff.removed)):
        for p in rows[:SHOWN]:
            print(f"{name}\t{_label(p)}")
        if len(rows) > SHOWN:
            print(f"{name}\t... and {len(rows) - SHOWN} more")
    for old, new in diff.repriced[:SHOWN]:
        print(
            f"repriced\t{_label(new)}: input {nanos_to_usd(old.input_per_mtok)} -> {nanos_to_usd(new.input_per_mtok)}, "
            f"output {nanos_to_usd(old.output_per_mtok)} -> {nanos_to_usd(new.output_per_mtok)} USD/Mtok"
        )
    if len(diff.repriced) > SHOWN:
        print(f"repriced\t... and {len(diff.repriced) - SHOWN} more")
    verb = "would add" if args.dry_run else "added"
    print(
        f"{verb} {len(diff.added)}, repriced {len(diff.repriced)}, removed {len(diff.removed)}, "
        f"unchanged {diff.unchanged} versions"
        + (" (dry run: nothing changed)" if args.dry_run else f"; shared catalog is now {conversion.version}")
    )
    for provider, model, reason in conversion.refused[:SHOWN]:
        print(f"refused\t{provider}/{model}: {reason}")
