"""`meter serve | migrate | keys | retention | prices`: the command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

from meterd.config import Config, add_flags
from meterd.domain.errors import MeterError
from meterd.domain.keys import ROLES, validate_roles, validate_tenant

log = logging.getLogger("meter")


@contextlib.contextmanager
def database(config: Config) -> Iterator[str]:
    """The configured database URL, or the embedded PostgreSQL under data_dir (started if needed and
    stopped afterwards only if this process started it)."""
    if config.database_url:
        yield config.database_url
        return
    from meterd.store.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(config.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


async def _serve(config: Config, url: str) -> None:
    from meterd.app import MeterServer
    from meterd.store.keys import KeyStore

    server = MeterServer(config, url)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait([ready, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and not config.database_url and await KeyStore(server.db).count() == 0:
        print(
            "\nNo API keys yet. Create the first admin key (in another terminal):\n"
            f"    .venv/bin/meter keys create --tenant default --role admin --data-dir {config.data_dir}\n",
            flush=True,
        )
    await stop.wait()
    log.info("shutting down (grace %.0fs)", config.grace_period)
    await server.stop()


def run_loop(coro, use_uvloop: bool) -> None:
    """uvloop gives about 30% more RPCs per CPU than the default loop."""
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None and use_uvloop:
        uvloop.run(coro)
    else:
        asyncio.run(coro)


def cmd_serve(config: Config) -> None:
    with database(config) as url:
        run_loop(_serve(config, url), config.uvloop)


def cmd_migrate(config: Config) -> None:
    from meterd.store.migrate import migrate

    with database(config) as url:
        applied = asyncio.run(migrate(url))
    print("applied: " + ", ".join(applied) if applied else "schema up to date")


async def _with_database(url: str, action, *, statement_timeout: float = 10.0):
    """Migrate, then run `action(db)` on a one-connection Database of its own and close it: the
    commands that work on the database directly (keys, prices), with no server running."""
    from meterd.store.db import Database
    from meterd.store.migrate import migrate

    await migrate(url)
    db = Database(url, min_size=1, max_size=1, statement_timeout=statement_timeout)
    await db.open()
    try:
        return await action(db)
    finally:
        await db.close()


async def _with_keys(config: Config, url: str, action):
    from meterd.store.keys import KeyStore

    return await _with_database(url, lambda db: action(KeyStore(db)))


def cmd_keys(config: Config, args: argparse.Namespace) -> None:
    tenant = validate_tenant(args.tenant)
    with database(config) as url:
        if args.keys_command == "create":
            roles = validate_roles(args.role)
            row, secret = asyncio.run(_with_keys(config, url, lambda ks: ks.create(tenant, roles, args.name)))
            print(secret)
            print(
                f"# key id {row.id}, tenant {tenant}, roles {','.join(row.roles)}: shown once, store it now",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            rows = asyncio.run(_with_keys(config, url, lambda ks: ks.list(tenant, args.all)))
            for r in rows:
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.id}\t{','.join(r.roles)}\t{state}\t{r.name}")
        else:
            row = asyncio.run(_with_keys(config, url, lambda ks: ks.revoke(tenant, args.id)))
            print(f"revoked {row.id}")


def cmd_retention(config: Config, args: argparse.Namespace) -> None:
    """Drop raw calls older than --older-than, a whole month at a time (rollups are kept)."""
    import datetime as dt

    from meterd.config import parse_seconds
    from meterd.store.partitions import PartitionStore

    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_seconds(args.older_than))
    with database(config) as url:
        dropped, boundary = asyncio.run(
            _with_database(url, lambda db: PartitionStore(db).drop_older_than(cutoff, dry_run=args.dry_run))
        )
    verb = "would drop" if args.dry_run else "dropped"
    print(f"{verb} {len(dropped)} monthly partition(s){': ' + ', '.join(dropped) if dropped else ''}")
    print(f"raw calls before {boundary:%Y-%m-%d} {'would be' if args.dry_run else 'are'} gone; rollups are kept")


def _add_retention_parser(sub) -> None:
    retention = sub.add_parser("retention", help="drop raw calls older than a duration, whole months at a time")
    retention.add_argument("--older-than", required=True, help="e.g. 90d: months that ended before now - 90 days")
    retention.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    add_flags(retention, ("database_url", "data_dir", "log_level"))


def _usd(text: str) -> int:
    from meterd.domain.pricing import usd_to_nanos

    try:
        return usd_to_nanos(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str):
    """ISO 8601 date or date-time; without an offset it is UTC."""
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date or date-time like 2025-01-01, got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _price_line(stored) -> str:
    from meterd.domain.pricing import nanos_to_usd
    from meterd.service.prices import PRICE_RATE_FIELDS

    p = stored.price
    rates = [nanos_to_usd(getattr(p, attr)) for _, attr in PRICE_RATE_FIELDS]
    scope = "catalog" if stored.shared else "tenant"
    return "\t".join([p.price_id, scope, p.provider, p.model_pattern, p.effective_from.isoformat(), *rates, p.note])


PRICE_HEADER = "# id\tscope\tprovider\tmodel\teffective_from\tinput/Mtok\toutput/Mtok\tcached_read/Mtok\tcache_write/Mtok\tper_request\tper_unit\tnote"


def cmd_prices(config: Config, args: argparse.Namespace) -> None:
    """Price versions and repricing, directly in the database. Without --tenant (list) or with
    --shared (set, load) the shared catalog is meant; USD amounts are exact decimals."""
    from meterd.domain.pricing import load_catalog, nanos_to_usd
    from meterd.service.prices import PriceAdmin, PriceBook, validate_price
    from meterd.service.reprice import Repricer
    from meterd.store.limits import LimitStore
    from meterd.store.prices import CATALOG_TENANT, PriceStore
    from meterd.store.reprice import RepriceStore

    tenant = validate_tenant(args.tenant) if getattr(args, "tenant", None) else CATALOG_TENANT
    command = args.prices_command
    if command == "list":

        def action(db):
            return PriceAdmin(PriceBook(PriceStore(db))).list(
                tenant, provider=args.provider, model=args.model, at=args.at
            )

    elif command == "set":
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
        try:
            prices = load_catalog(args.file) if args.file else []
        except (OSError, ValueError) as exc:
            sys.exit(f"meter: {args.file}: {exc}")

        def action(db):
            return PriceAdmin(PriceBook(PriceStore(db))).load(tenant, prices, include_default_catalog=args.default)

    else:

        def action(db):
            return Repricer(RepriceStore(db), PriceStore(db), LimitStore(db)).reprice(
                tenant, args.start, args.end, provider=args.provider, model=args.model,
                include_client_costs=args.include_client_costs,
            )  # fmt: skip

    with database(config) as url:
        # A reprice is one transaction of many statements over possibly many calls: no 10 s cap.
        result = asyncio.run(_with_database(url, action, statement_timeout=3600.0 if command == "reprice" else 10.0))
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


def _add_prices_parser(sub) -> None:
    prices = sub.add_parser("prices", help="price versions and repricing, directly in the database")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    listing = prices_sub.add_parser("list", help="a tenant's prices and the shared catalog (no --tenant: the catalog)")
    listing.add_argument("--tenant")
    listing.add_argument("--provider", default="")
    listing.add_argument("--model", default="", help="versions whose pattern matches this model")
    listing.add_argument("--at", type=_instant, help="only the versions in force at this time")
    setting = prices_sub.add_parser("set", help="add a price version (USD amounts, e.g. --input-per-mtok 2.50)")
    loading = prices_sub.add_parser("load", help="add the versions of a TOML catalog (format of default_prices.toml)")
    for p in (setting, loading):
        scope = p.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant")
        scope.add_argument("--shared", action="store_true", help="the shared catalog every tenant falls back to")
    setting.add_argument("--provider", required=True)
    setting.add_argument("--model", required=True, help="exact model name or a glob with * and ?")
    setting.add_argument("--effective-from", required=True, type=_instant, help="ISO date or date-time (UTC)")
    setting.add_argument("--input-per-mtok", required=True, type=_usd, help="USD per million input tokens")
    setting.add_argument("--output-per-mtok", required=True, type=_usd, help="USD per million output tokens")
    setting.add_argument("--cached-read-per-mtok", type=_usd, default=0, help="USD per million cached-read tokens")
    setting.add_argument("--cache-write-per-mtok", type=_usd, default=0, help="USD per million cache-write tokens")
    setting.add_argument("--per-request", type=_usd, default=0, help="USD per request")
    setting.add_argument("--per-unit", type=_usd, default=0, help="USD per unit")
    setting.add_argument("--note", default="")
    loading.add_argument("file", nargs="?", help="TOML file with [[price]] entries")
    loading.add_argument("--default", action="store_true", help="also the catalog bundled with meter")
    reprice = prices_sub.add_parser("reprice", help="recompute recorded calls' costs with the prices now in force")
    reprice.add_argument("--tenant", required=True)
    reprice.add_argument("--from", dest="start", required=True, type=_instant, help="occurred_at from (inclusive)")
    reprice.add_argument("--to", dest="end", required=True, type=_instant, help="occurred_at to (exclusive)")
    reprice.add_argument("--provider", default="")
    reprice.add_argument("--model", default="")
    reprice.add_argument("--include-client-costs", action="store_true", help="also calls whose cost the client gave")
    for p in (listing, setting, loading, reprice):
        add_flags(p, ("database_url", "data_dir", "log_level"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meter", description="Metering and quota enforcement for LLM calls.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server (embedded PostgreSQL unless --database-url)")
    add_flags(serve)
    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    add_flags(migrate, ("database_url", "data_dir", "log_level"))
    keys = sub.add_parser("keys", help="manage API keys directly in the database (bootstrap)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the tenant) and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", action="append", required=True, choices=ROLES, help="repeat for several roles")
    create.add_argument("--name", default="")
    listing = keys_sub.add_parser("list", help="list a tenant's keys")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("id")
    for p in (create, listing, revoke):
        add_flags(p, ("database_url", "data_dir", "log_level"))
    _add_retention_parser(sub)
    _add_prices_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        config = Config.load(vars(args))
    except ValueError as exc:
        sys.exit(f"meter: {exc}")
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        if args.command == "serve":
            cmd_serve(config)
        elif args.command == "migrate":
            cmd_migrate(config)
        elif args.command == "retention":
            cmd_retention(config, args)
        elif args.command == "prices":
            cmd_prices(config, args)
        else:
            cmd_keys(config, args)
    except MeterError as exc:
        sys.exit(f"meter: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
