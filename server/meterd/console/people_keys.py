"""`meter keys list|create|revoke` through Meter's Admin API, with an admin key of the tenant (aligned
tables, `--format json|csv|markdown`). Without --tenant the keys commands take this form; with
--tenant they work directly in the database (cli_keys: the bootstrap of the first admin key)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from meter.v1 import admin_pb2
from meterd.console import fmt
from meterd.console.api_commands import add_connection_flags, run
from meterd.console.tables import FORMATS, Column, render
from meterd.domain.clock import utc_now

KEY_COLUMNS = [
    Column("id", "id"),
    Column("name", "name"),
    Column("roles", "roles"),
    Column("state", "state"),
    Column("created", "created", "time"),
    Column("expires", "expires", "time"),
    Column("last_used", "last used", "time"),
    Column("bound_to", "bound to"),
]
ROLES = {name: admin_pb2.Role.Value("ROLE_" + name.upper()) for name in ("check", "record", "read", "admin")}


def add_api_flags(parser: argparse.ArgumentParser) -> None:
    """The API form's flags beside the database form's (cli_keys adds both)."""
    add_connection_flags(parser, "admin")
    parser.add_argument("--format", default="table", choices=FORMATS, help="the API form's output (default table)")


def _when(ts) -> dt.datetime | None:
    return fmt.when(ts) if ts.seconds or ts.nanos else None


def key_row(key: admin_pb2.ApiKey) -> dict:
    binding = (key.bound_cert_subject and f"CN={key.bound_cert_subject}", key.bound_san and f"SAN={key.bound_san}")
    revoked = _when(key.revoke_time)
    return {
        "id": key.id,
        "name": key.name,
        "roles": ",".join(admin_pb2.Role.Name(r).removeprefix("ROLE_").lower() for r in key.roles),
        "state": f"revoked {fmt.utc(revoked)}" if revoked else "active",
        "created": _when(key.create_time),
        "expires": _when(key.expire_time),
        "last_used": _when(key.last_use_time),
        "bound_to": ",".join(filter(None, binding)) or "-",
    }


def cmd_keys(args: argparse.Namespace) -> None:
    if not args.api_key:
        sys.exit(
            f"meter: keys {args.keys_command} needs --tenant (directly in the database) or "
            "--api-key / METER_API_KEY (an admin key, through Meter's API)"
        )
    command = args.keys_command
    if command == "list":

        async def work(client) -> str:
            keys = await client.list_api_keys(include_revoked=args.all)
            return render(KEY_COLUMNS, [key_row(k) for k in keys], args.format)

    elif command == "create":
        expire_time = utc_now() + dt.timedelta(seconds=args.expires_in) if args.expires_in else None

        async def work(client) -> str:
            reply = await client.create_api_key(
                args.name, [ROLES[r] for r in args.role], expire_time=expire_time,
                bind_cert_subject=args.bind_cert_subject, bind_san=args.bind_san,
            )  # fmt: skip
            print(f"# key id {reply.key.id}, roles {key_row(reply.key)['roles']}: shown once, store it now",
                  file=sys.stderr)  # fmt: skip
            if args.format == "table":
                return reply.secret + "\n"  # like the database form: only the secret on stdout
            return render(KEY_COLUMNS + [Column("secret", "secret")], [key_row(reply.key) | {"secret": reply.secret}],
                          args.format)  # fmt: skip

    else:

        async def work(client) -> str:
            key = await client.revoke_api_key(args.id)
            return f"revoked {key.id}\n"

    run(args, work)
