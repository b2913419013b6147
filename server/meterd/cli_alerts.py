"""`meter alerts tail` (StreamAlerts, through the Python client's resuming stream) and `meter alerts
rules set|list|delete` (directly in the database); `alerts defaults` is in cli_alert_defaults."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from meterd import cli_alert_defaults
from meterd.cli_args import usd
from meterd.cli_db import database, with_database
from meterd.client_flags import add_tls_client_flags, tls_from_args
from meterd.config import Config, add_flags
from meterd.domain.alert_records import StoredRule
from meterd.domain.keys import validate_tenant

ALERT_KINDS = ("limit_threshold", "window_cost", "call_cost", "error_rate", "latency_p95", "unpriced_model",
               "denials", "reservation_expired", "projected_over_budget",
               "report_digest")  # fmt: skip
SEVERITIES = ("info", "warning", "critical")


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
    """Follow StreamAlerts through the client's resuming stream, with since_id = the resume point of
    --state-file (heartbeats' resume_id plus the ids shown above it) at every reconnection."""
    import grpc

    from meter import MeterClient, MeterError
    from meter.v1 import common_pb2

    if not args.api_key:
        sys.exit("meter: alerts tail needs --api-key or METER_API_KEY (a key with the read role)")
    state = TailState(args.state_file, args.since_id)
    # --once stops at the first heartbeat, which comes after the replay and one quiet interval: the
    # shortest interval the server allows keeps that prompt.
    heartbeat = args.heartbeat if args.heartbeat is not None else (1.0 if args.once else 15.0)
    channel = dial(args)
    # A wrong address or a server that is not running is the user's to fix: say so, do not retry
    # forever (reconnects after a first success do go on, that is what tail is for).
    try:
        grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        sys.exit(
            f"meter: cannot reach Meter at {args.address} within {args.connect_timeout:g}s (is it running? see --address)"
        )
    with MeterClient(args.address, api_key=args.api_key, spool=False, channel=channel) as client:
        stream = client.alerts(
            since_id=state.since_id(),
            min_severity=common_pb2.Severity.Value("SEVERITY_" + args.min_severity.upper()) if args.min_severity else 0,
            kinds=[common_pb2.AlertKind.Value("ALERT_KIND_" + k.upper()) for k in args.kind or ()],
            subject_prefix=args.subject_prefix,
            heartbeat_interval=max(int(heartbeat), 1),
            max_reconnect_delay=10.0,
        )

        def disconnected(error: MeterError, delay: float) -> None:
            if args.once:
                raise error
            print(f"# stream ended ({error}); resuming in {delay:.1f}s", file=sys.stderr)

        stream.on_disconnect = disconnected
        try:
            for response in stream.events():
                if response.HasField("alert"):
                    if state.shown(response.alert.id):
                        print(_alert_line(response.alert, args.json), flush=True)
                else:
                    state.heartbeat(response.heartbeat.resume_id)
                    if args.once:
                        return
                stream.last_id = state.since_id()  # where the next reconnection resumes
        except MeterError as exc:
            sys.exit(f"meter: {exc}")


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


def _rule_line(stored: StoredRule) -> str:
    from meterd.domain.rule_secrets import webhook_target
    from meterd.store.alert_rules import rule_params

    r = stored.rule
    params = json.dumps(rule_params(r), separators=(",", ":"))
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
        result = asyncio.run(with_database(url, action))
    if command == "set":
        stored, created = result
        print(("created\t" if created else "replaced\t") + _rule_line(stored))
    elif command == "list":
        for stored in result:
            print(_rule_line(stored))
    else:
        print(f"deleted {args.id}")


def add_parser(sub) -> None:
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
    setting.add_argument("--amount-usd", type=usd, help="window_cost, call_cost, projected_over_budget: amount in USD")
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
    cli_alert_defaults.add_parser(alerts_sub, add_flags, usd, _channel_arg)
