"""`meter keys create|list|revoke`. With --tenant: directly in the database (the bootstrap: the first
admin key can only come from here). Without: through Meter's Admin API with an admin key
(console/people_keys), the form for everything after the first key."""

from __future__ import annotations

import argparse
import asyncio
import sys

from meterd.cli_args import positive_duration
from meterd.cli_db import database, with_database
from meterd.config import Config, add_flags
from meterd.domain.keys import ROLES, validate_roles, validate_tenant


async def _with_keys(config: Config, url: str, action):
    from meterd.store.keys import KeyStore

    return await with_database(url, lambda db: action(KeyStore(db)))


def cmd_keys(config: Config, args: argparse.Namespace) -> None:
    if args.tenant is None:
        from meterd.console import people_keys
        from meterd.console.cli import run_console_command

        args.console_func = people_keys.cmd_keys
        return run_console_command(args)
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


def add_parser(sub) -> None:
    keys = sub.add_parser(
        "keys",
        help="API keys: with --tenant directly in the database (bootstrap), else through the API with an admin key",
        description="With --tenant, the keys of that tenant directly in the database: how the first admin key "
        "is made, with no server running. Without --tenant, the keys of the tenant of --api-key (an admin key, "
        "or METER_API_KEY) through Meter's Admin API at --address, printed as a table or --format json|csv|markdown.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the tenant) and print it once")
    create.add_argument("--tenant", help="the tenant, directly in the database (omit to go through the API)")
    create.add_argument("--role", action="append", required=True, choices=ROLES, help="repeat for several roles")
    create.add_argument("--name", default="")
    create.add_argument(
        "--expires-in",
        type=positive_duration,
        help="the key stops working after this long, e.g. 30d or 12h (default: never)",
    )
    create.add_argument(
        "--bind-cert-subject", default="", help="mutual TLS: accept the key only with a client certificate of this CN"
    )
    create.add_argument(
        "--bind-san", default="", help="mutual TLS: accept the key only with a client certificate listing this SAN"
    )
    listing = keys_sub.add_parser("list", help="list a tenant's keys")
    listing.add_argument("--tenant", help="the tenant, directly in the database (omit to go through the API)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("--tenant", help="the tenant, directly in the database (omit to go through the API)")
    revoke.add_argument("id")
    from meterd.console.people_keys import add_api_flags

    for p in (create, listing, revoke):
        add_flags(p, ("database_url", "data_dir", "log_level"))
        add_api_flags(p)
