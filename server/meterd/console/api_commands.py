"""What the people commands that work through Meter's gRPC API share (usage, limits, calls,
recommend, report and keys' API form): the flags that reach a server, the call filter flags, and
running a command's work on a client, its output written to stdout."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from meter import AsyncMeterClient
from meterd.client_flags import add_tls_client_flags, tls_from_args
from meterd.console import pages
from meterd.console.ranges import RangeError


def _client(args) -> AsyncMeterClient:
    if not args.api_key:
        sys.exit(f"meter: {args.command} needs --api-key or METER_API_KEY")
    return AsyncMeterClient(args.address, api_key=args.api_key, tls=tls_from_args(args))


def run(args, work) -> None:
    """Writes what `work` returns for a client of the server the flags name; a bad flag value
    (RangeError, raised inside `work`) ends the command with its message, not a traceback."""

    async def main():
        client = _client(args)
        try:
            return await work(client)
        finally:
            await client.close()

    try:
        sys.stdout.write(asyncio.run(main()))
    except RangeError as exc:
        sys.exit(f"meter: {exc}")


def call_filters(args) -> dict:
    """The filter fields of GetUsage, ListCalls and GetRecommendations from add_filter_flags' flags."""
    out = {name: getattr(args, name) for name in pages.CALL_FILTERS if getattr(args, name, "")}
    labels = dict(pair.split("=", 1) for pair in args.label or [] if "=" in pair)
    bad = [pair for pair in args.label or [] if "=" not in pair]
    if bad:
        raise RangeError(f"--label wants key=value, got {bad[0]!r}")
    if labels:
        out["labels"] = labels
    return out


def add_connection_flags(parser: argparse.ArgumentParser, role: str) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("METER_ADDRESS", "127.0.0.1:50051"),
        help="Meter's host:port [env METER_ADDRESS]",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("METER_API_KEY"), help=f"a key with the {role} role [env METER_API_KEY]"
    )
    add_tls_client_flags(parser)


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    for name in pages.CALL_FILTERS:
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default="", help=f"only calls with this {name.replace('_', ' ')}"
        )
    parser.add_argument("--label", action="append", metavar="KEY=VALUE", help="only calls with this label (repeatable)")
