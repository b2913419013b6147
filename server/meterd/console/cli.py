"""`meter console`, `meter usage`, `meter limits`, `meter calls` and `meter report`: commands for
people, all clients of Meter's public gRPC API (an address and an API key), none touching the
database. `add_console_commands` is the only hook meterd.cli calls."""

from __future__ import annotations

import argparse
import os

from meterd.client_flags import add_tls_client_flags, tls_from_args

DEFAULT_METER = "127.0.0.1:50051"


def _split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"--listen wants host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def cmd_console(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from meterd.console.app import create_app
    except ImportError as exc:
        raise SystemExit(f"meter console needs the console extra: pip install 'meter[console]' ({exc})") from None

    host, port = _split_listen(args.listen)
    tls = tls_from_args(args)
    app = create_app(args.meter, secure_cookie=not args.insecure_cookie, cache_ttl=args.cache_ttl, tls=tls)
    over = "TLS" if tls else "plaintext"
    print(f"Meter console on http://{host}:{port}/ (Meter at {args.meter}, {over}); sign in with a read or admin key")
    uvicorn.run(app, host=host, port=port, log_level=args.log_level.lower(), proxy_headers=True, server_header=False)


def _meter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--meter",
        default=os.environ.get("METER_ADDRESS", DEFAULT_METER),
        help="Meter's gRPC address (env METER_ADDRESS)",
    )
    add_tls_client_flags(parser)


def add_console_commands(sub) -> None:
    console = sub.add_parser("console", help="serve the web console (a client of Meter's gRPC API)")
    console.add_argument("--listen", default="127.0.0.1:8080", help="host:port for the console's HTTP server")
    _meter_arguments(console)
    console.add_argument(
        "--insecure-cookie",
        action="store_true",
        help="drop the Secure flag of the session cookie (only for plain HTTP on a non-loopback address; "
        "browsers keep Secure cookies on http://localhost and 127.0.0.1)",
    )
    console.add_argument(
        "--cache-ttl", type=float, default=30.0, help="seconds a GetUsage answer is reused for the same key (0: never)"
    )
    console.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    console.set_defaults(console_func=cmd_console)
    from meterd.console import people_cli

    people_cli.add_commands(sub, _meter_arguments)


def run_console_command(args: argparse.Namespace) -> None:
    """Runs one of these commands; Meter's errors end it with a one-line message, not a traceback."""
    import sys

    from meter import MeterError

    try:
        args.console_func(args)
    except MeterError as exc:
        sys.exit(f"meter: {exc}")
    except KeyboardInterrupt:
        pass
