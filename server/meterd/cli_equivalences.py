"""`meter equivalents set | list | delete`: a tenant's model equivalence list, directly in the
database (like dimensions and keys). GetRecommendations prices a used model on the other members
of its groups when the request names no candidates; see docs/recommendations.md."""

from __future__ import annotations

import argparse
import asyncio

from meterd.config import Config, add_flags


def add_parser(sub) -> None:
    eq = sub.add_parser(
        "equivalents", help="groups of interchangeable models for `meter recommend` (the equivalence list)"
    )
    eq_sub = eq.add_subparsers(dest="equivalents_command", required=True)
    setting = eq_sub.add_parser(
        "set",
        help="create a group of interchangeable models, or replace its models",
        description="When a recommendation request names no candidate models, a used model that belongs to "
        "a group is priced on the group's other members, whatever their provider (models in no group keep "
        "the same provider's models). 2-32 models per group, at most 100 groups per tenant.",
    )
    setting.add_argument("name", help="the group's name, 1-64 characters of [A-Za-z0-9._:-], e.g. small-chat")
    setting.add_argument("models", nargs="+", metavar="PROVIDER/MODEL", help="e.g. openai/gpt-4.1-mini")
    listing = eq_sub.add_parser("list", help="the tenant's groups")
    deleting = eq_sub.add_parser("delete", help="delete a group")
    deleting.add_argument("name")
    for p in (setting, listing, deleting):
        p.add_argument("--tenant", required=True)
        add_flags(p, ("database_url", "data_dir", "log_level"))


def run(config: Config, args: argparse.Namespace, database, with_database, validate_tenant) -> None:
    """`database` and `with_database` are cli_db's (passed in like cli_dimensions')."""
    from meterd.domain.equivalences import model_text
    from meterd.service.equivalences import EquivalenceAdmin
    from meterd.store.equivalences import EquivalenceStore

    tenant = validate_tenant(args.tenant)
    command = args.equivalents_command

    def action(db):
        admin = EquivalenceAdmin(EquivalenceStore(db))
        if command == "set":
            return admin.set(tenant, args.name, args.models)
        if command == "list":
            return admin.list(tenant)
        return admin.delete(tenant, args.name)

    with database(config) as url:
        result = asyncio.run(with_database(url, action))
    if command == "set":
        stored, created = result
        print(
            f"{'created' if created else 'replaced'}\t{stored.name}\t" + " ".join(model_text(*m) for m in stored.models)
        )
    elif command == "list":
        for e in result:
            print(f"{e.name}\t" + " ".join(model_text(*m) for m in e.models))
    else:
        print(f"deleted {args.name}")
