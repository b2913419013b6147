"""`meter keys create|list|revoke`: API keys directly in the database (the bootstrap: the first admin
key can only come from here)."""

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
    keys = sub.add_parser("keys", help="manage API keys directly in the database (bootstrap)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and the tenant) and print it once")
    create.add_argument("--tenant", required=True)
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
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("id")
    for p in (create, listing, revoke):
        add_flags(p, ("database_url", "data_dir", "log_level"))
