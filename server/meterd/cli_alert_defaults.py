"""`meter alerts defaults --tenant T`: a tenant's starter alert rules, directly in the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def add_parser(alerts_sub, add_flags, usd, channel_arg) -> None:
    about = (
        "create a tenant's starter rules: 80%%/100%% of every limit, error rate over 10%% per hour, "
        "daily cost over --daily-cost-usd"
    )
    # help strings are %-formatted by argparse, descriptions are not
    p = alerts_sub.add_parser("defaults", help=about, description=about.replace("%%", "%"))
    p.add_argument("--tenant", required=True)
    p.add_argument("--daily-cost-usd", type=usd, help="also alert (critical) when a day's cost goes over this")
    p.add_argument("--error-rate", type=float, default=0.10, help="fraction of failed calls per hour (default 0.10)")
    p.add_argument("--min-calls", type=int, default=20, help="calls in the hour before the error rate counts")
    p.add_argument("--channel", action="append", type=channel_arg, help="as for `rules set` (repeat)")
    p.add_argument("--template", default="", help="message template, as for `rules set`")
    p.add_argument("--replace", action="store_true", help="overwrite rules with the same ids (default: keep them)")
    add_flags(p, ("database_url", "data_dir", "log_level"))


def run(config, args: argparse.Namespace, database, with_database, validate_tenant) -> None:
    from meterd.domain.default_rules import default_rules
    from meterd.domain.errors import InvalidArgument
    from meterd.store.alerts import AlertStore, rule_params

    tenant = validate_tenant(args.tenant)
    try:
        rules = default_rules(daily_cost_nanos=args.daily_cost_usd or 0, error_rate=args.error_rate,
                              min_calls=args.min_calls, channels=args.channel or (), message_template=args.template)  # fmt: skip
    except InvalidArgument as exc:
        sys.exit(f"meter: {exc}")

    async def action(db):
        store = AlertStore(db)
        existing = {s.rule.id for s in await store.list_rules(tenant)}
        done = []
        for rule in rules:
            if rule.id in existing and not args.replace:
                done.append(("kept", rule))
                continue
            _, created = await store.set_rule(tenant, rule)
            done.append(("created" if created else "replaced", rule))
        return done

    with database(config) as url:
        for what, rule in asyncio.run(with_database(url, action)):
            print(f"{what}\t{rule.id}\t{rule.kind.value}\t{json.dumps(rule_params(rule), separators=(',', ':'))}")
