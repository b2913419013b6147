"""`meter prices list|set|load|reprice|sync`: price versions and repricing, directly in the database."""

from __future__ import annotations

import argparse
import asyncio
import sys

from meterd.cli_args import instant, usd
from meterd.cli_db import database, with_database
from meterd.cli_progress import Progress
from meterd.config import Config, add_flags
from meterd.domain.keys import validate_tenant


def _price_line(stored) -> str:
    from meterd.domain.pricing import nanos_to_usd
    from meterd.service.prices import PRICE_RATE_FIELDS

    p = stored.price
    rates = [nanos_to_usd(getattr(p, attr)) for _, attr in PRICE_RATE_FIELDS]
    scope = "catalog" if stored.shared else "tenant"
    # A catalog version for one service tier or time of day says so after the model.
    model = " ".join([p.model_pattern] + [f"[{x}]" for x in (p.service_tier, p.daily_window) if x])
    return "\t".join([p.price_id, scope, p.provider, model, p.effective_from.isoformat(), *rates, p.note])


PRICE_HEADER = "# id\tscope\tprovider\tmodel\teffective_from\tinput/Mtok\toutput/Mtok\tcached_read/Mtok\tcache_write/Mtok\tper_request\tper_unit\tnote"


def cmd_prices(config: Config, args: argparse.Namespace) -> None:
    """Price versions and repricing, directly in the database. Without --tenant (list) or with
    --shared (set, load) the shared catalog is meant; USD amounts are exact decimals."""
    import tomllib

    from meterd.domain.pricing import missing_cache_rates, nanos_to_usd, parse_catalog
    from meterd.service.prices import PriceAdmin, PriceBook, validate_price
    from meterd.service.reprice import Repricer
    from meterd.store.limits import LimitStore
    from meterd.store.prices import CATALOG_TENANT, PriceStore
    from meterd.store.reprice import RepriceStore

    command = args.prices_command
    if command == "sync":
        from meterd.cli_prices_sync import cmd_sync

        return cmd_sync(config, args, database, with_database)
    tenant = validate_tenant(args.tenant) if getattr(args, "tenant", None) else CATALOG_TENANT
    if command == "list":

        def action(db):
            return PriceAdmin(PriceBook(PriceStore(db))).list(
                tenant, provider=args.provider, model=args.model, at=args.at
            )

    elif command == "set":
        # The rule of catalog files too (domain.pricing.CACHE_RATES): a cache rate not given is the
        # input rate, said out loud.
        for name in missing_cache_rates(vars(args)):
            setattr(args, name, args.input_per_mtok)
            print(f"# --{name.replace('_', '-')} not given: the input rate", file=sys.stderr)
        rates = {
            "input_nanos_per_mtok": args.input_per_mtok,
            "output_nanos_per_mtok": args.output_per_mtok,
            "cached_read_nanos_per_mtok": args.cached_read_per_mtok,
            "cache_write_nanos_per_mtok": args.cache_write_per_mtok,
            "request_nanos": args.per_request,
            "unit_nanos": args.per_unit,
        }
        price = validate_price(
            provider=args.provider, model_pattern=args.model, effective_from=args.effective_from, rates=rates,
            note=args.note,
        )  # fmt: skip

        def action(db):
            return PriceAdmin(PriceBook(PriceStore(db))).set(tenant, price)

    elif command == "load":
        if not args.file and not args.default:
            sys.exit("meter: prices load needs a FILE, --default, or both")
        prices = []
        if args.file:
            try:
                with open(args.file, "rb") as fh:
                    data = tomllib.load(fh)
                prices = parse_catalog(data)
            except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
                sys.exit(f"meter: {args.file}: {exc}")
            for i, entry in enumerate(data.get("price", [])):
                if missing := missing_cache_rates(entry):
                    print(f"# price[{i}] ({entry['provider']} {entry['model']}): {', '.join(missing)} not given: "
                          "the input rate", file=sys.stderr)  # fmt: skip

        def action(db):
            return PriceAdmin(PriceBook(PriceStore(db))).load(tenant, prices, include_default_catalog=args.default)

    else:

        def action(db):
            return Repricer(RepriceStore(db), PriceStore(db), LimitStore(db)).reprice(
                tenant, args.start, args.end, provider=args.provider, model=args.model,
                include_client_costs=args.include_client_costs, progress=bar,
            )  # fmt: skip

    bar = Progress("reprice: calls examined")
    with database(config) as url, bar:
        # A reprice is one transaction of many statements over possibly many calls: no 10 s cap.
        result = asyncio.run(with_database(url, action, statement_timeout=3600.0 if command == "reprice" else 10.0))
    if command == "list":
        print(PRICE_HEADER)
        for stored in result:
            print(_price_line(stored))
    elif command == "set":
        print(_price_line(result))
    elif command == "load":
        print(f"added {result[0]}, skipped {result[1]} (identical versions already stored)")
    else:
        print(
            f"examined {result.calls_examined} calls, changed {result.calls_changed}, "
            f"cost delta {nanos_to_usd(result.cost_delta_nanos)} USD"
        )


def add_parser(sub) -> None:
    prices = sub.add_parser("prices", help="price versions and repricing, directly in the database")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    listing = prices_sub.add_parser("list", help="a tenant's prices and the shared catalog (no --tenant: the catalog)")
    listing.add_argument("--tenant")
    listing.add_argument("--provider", default="")
    listing.add_argument("--model", default="", help="versions whose pattern matches this model")
    listing.add_argument("--at", type=instant, help="only the versions in force at this time")
    setting = prices_sub.add_parser("set", help="add a price version (USD amounts, e.g. --input-per-mtok 2.50)")
    loading = prices_sub.add_parser("load", help="add the versions of a TOML price file (format in docs/pricing.md)")
    for p in (setting, loading):
        scope = p.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant")
        scope.add_argument("--shared", action="store_true", help="the shared catalog every tenant falls back to")
    setting.add_argument("--provider", required=True)
    setting.add_argument("--model", required=True, help="exact model name or a glob with * and ?")
    setting.add_argument("--effective-from", required=True, type=instant, help="ISO date or date-time (UTC)")
    setting.add_argument("--input-per-mtok", required=True, type=usd, help="USD per million input tokens")
    setting.add_argument("--output-per-mtok", required=True, type=usd, help="USD per million output tokens")
    setting.add_argument("--cached-read-per-mtok", type=usd, help="USD per million cached-read tokens (default: input)")
    setting.add_argument("--cache-write-per-mtok", type=usd, help="USD per million cache-write tokens (default: input)")
    setting.add_argument("--per-request", type=usd, default=0, help="USD per request")
    setting.add_argument("--per-unit", type=usd, default=0, help="USD per unit")
    setting.add_argument("--note", default="")
    loading.add_argument("file", nargs="?", help="TOML file with [[price]] entries")
    loading.add_argument("--default", action="store_true", help="also the installed genai-prices catalog")
    reprice = prices_sub.add_parser("reprice", help="recompute recorded calls' costs with the prices now in force")
    reprice.add_argument("--tenant", required=True)
    reprice.add_argument("--from", dest="start", required=True, type=instant, help="occurred_at from (inclusive)")
    reprice.add_argument("--to", dest="end", required=True, type=instant, help="occurred_at to (exclusive)")
    reprice.add_argument("--provider", default="")
    reprice.add_argument("--model", default="")
    reprice.add_argument("--include-client-costs", action="store_true", help="also calls whose cost the client gave")
    for p in (listing, setting, loading, reprice):
        add_flags(p, ("database_url", "data_dir", "log_level"))
    from meterd.cli_prices_sync import add_sync_parser

    add_sync_parser(prices_sub)
