"""Alert rules and alerts between protobuf messages and domain objects."""

from __future__ import annotations

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meterd.api.convert import enum_value, ts
from meterd.api.limits_codec import proto_enum_name, proto_enum_value, selector_from_proto, selector_to_proto
from meterd.domain.alert_records import StoredRule
from meterd.domain.alerts import Alert, AlertFilter, AlertKind, AlertRule, Severity, validate_rule
from meterd.domain.channels import Channel
from meterd.domain.errors import InvalidArgument
from meterd.domain.rule_secrets import webhook_target
from meterd.domain.windows import WindowKind

MIN_HEARTBEAT_S = 1.0
MAX_HEARTBEAT_S = 300.0


def rule_from_proto(p: admin_pb2.AlertRule) -> AlertRule:
    latency_us = p.latency.ToMicroseconds() if p.HasField("latency") else 0
    cooldown_s = p.cooldown.ToTimedelta().total_seconds() if p.HasField("cooldown") else 0
    return validate_rule(
        id=p.id,
        kind=proto_enum_name(common_pb2.AlertKind, p.kind, "ALERT_KIND_"),
        severity=proto_enum_name(common_pb2.Severity, p.severity, "SEVERITY_"),
        scope=selector_from_proto(p.scope),
        thresholds=list(p.thresholds_percent),
        limit_id=p.limit_id,
        amount_nanos=p.amount_nanos,
        window_kind=proto_enum_name(common_pb2.WindowKind, p.window.kind, "WINDOW_KIND_")
        if p.HasField("window")
        else "",
        window_seconds=p.window.duration.seconds,
        window_nanos=p.window.duration.nanos,
        error_rate=p.error_rate,
        min_calls=p.min_calls,
        latency_us=latency_us,
        count=p.count,
        cooldown_s=cooldown_s,
        webhook_url=p.webhook_url,
        webhook_secret=p.webhook_secret,
        disabled=p.disabled,
        channels=[_channel_fields(c) for c in p.channels],
        message_template=p.message_template,
    )


def _channel_fields(c: admin_pb2.AlertChannel) -> dict:
    kind = admin_pb2.ChannelKind.Name(c.kind) if c.kind in admin_pb2.ChannelKind.values() else ""
    tls = admin_pb2.SmtpTls.Name(c.smtp_tls) if c.smtp_tls in admin_pb2.SmtpTls.values() else "SMTP_TLS_?"
    return {
        "kind": "" if c.kind == 0 else kind.removeprefix("CHANNEL_KIND_").lower(),
        "url": c.url,
        "secret": c.secret,
        "email_to": list(c.email_to),
        "email_from": c.email_from,
        "smtp_host": c.smtp_host,
        "smtp_port": c.smtp_port,
        "smtp_tls": "" if c.smtp_tls == 0 else tls.removeprefix("SMTP_TLS_").lower(),
        "smtp_username": c.smtp_username,
    }


def channel_to_proto(c: Channel) -> admin_pb2.AlertChannel:
    """Secrets stay in: the url (chat webhook URLs carry their token) and the secret are write-only."""
    return admin_pb2.AlertChannel(
        kind=enum_value(admin_pb2.ChannelKind, "CHANNEL_KIND_" + c.kind.value.upper()),
        email_to=list(c.email_to),
        email_from=c.email_from,
        smtp_host=c.smtp_host,
        smtp_port=c.smtp_port,
        smtp_tls=enum_value(
            admin_pb2.SmtpTls, "SMTP_TLS_" + (c.smtp_tls.value.upper() if c.smtp_host else "UNSPECIFIED")
        ),
        smtp_username=c.smtp_username,
        target=c.target,
        secret_set=bool(c.secret),
    )


def rule_to_proto(stored: StoredRule) -> admin_pb2.AlertRule:
    r = stored.rule
    out = admin_pb2.AlertRule(
        id=r.id,
        kind=proto_enum_value(common_pb2.AlertKind, r.kind.value, "ALERT_KIND_"),
        severity=proto_enum_value(common_pb2.Severity, r.severity.value, "SEVERITY_"),
        scope=selector_to_proto(r.scope),
        thresholds_percent=list(r.thresholds),
        limit_id=r.limit_id,
        amount_nanos=r.amount_nanos,
        error_rate=r.error_rate,
        min_calls=r.min_calls,
        count=r.count,
        webhook_target=webhook_target(r),  # the URL (it may carry a token) and the secret are write-only
        webhook_secret_set=bool(r.webhook_secret),
        disabled=r.disabled,
        channels=[channel_to_proto(c) for c in r.channels],
        message_template=r.message_template,
        create_time=ts(stored.created_at),
        update_time=ts(stored.updated_at),
    )
    if r.window is not None:
        out.window.kind = proto_enum_value(common_pb2.WindowKind, r.window.kind.value, "WINDOW_KIND_")
        if r.window.kind in (WindowKind.FIXED, WindowKind.SLIDING):
            out.window.duration.seconds = r.window.seconds
    if r.latency_us:
        out.latency.FromMicroseconds(r.latency_us)
    if r.cooldown_s:
        out.cooldown.seconds = r.cooldown_s
    return out


def alert_to_proto(a: Alert) -> meter_pb2.Alert:
    try:  # limit metrics, and cost for cost rules; rate rules' figures are described by the message
        metric = proto_enum_value(common_pb2.Metric, a.metric or "unspecified", "METRIC_")
    except ValueError:
        metric = common_pb2.METRIC_UNSPECIFIED
    return meter_pb2.Alert(
        id=a.id,
        rule_id=a.rule_id,
        kind=proto_enum_value(common_pb2.AlertKind, a.kind.value, "ALERT_KIND_"),
        severity=proto_enum_value(common_pb2.Severity, a.severity.value, "SEVERITY_"),
        subject=a.subject,
        provider=a.provider,
        model=a.model,
        limit_id=a.limit_id,
        metric=metric,
        observed=a.observed,
        threshold=a.threshold,
        window_start=ts(a.window_start),
        window_end=ts(a.window_end),
        message=a.message,
        created_at=ts(a.created_at),
    )


def stream_request(
    tenant_id: str, r: meter_pb2.StreamAlertsRequest, default_heartbeat: float
) -> tuple[AlertFilter, int | None, float]:
    """(filter, since_id, heartbeat seconds) of a StreamAlerts request, or InvalidArgument."""
    violations: list[tuple[str, str]] = []
    severity = None
    if r.min_severity:
        name = proto_enum_name(common_pb2.Severity, r.min_severity, "SEVERITY_")
        if name.startswith("unknown"):
            violations.append(("min_severity", f"unknown value {r.min_severity}"))
        else:
            severity = Severity(name)
    kinds = set()
    for i, k in enumerate(r.kinds):
        name = proto_enum_name(common_pb2.AlertKind, k, "ALERT_KIND_")
        if not name or name.startswith("unknown"):
            violations.append((f"kinds[{i}]", f"unknown or unspecified value {k}"))
        else:
            kinds.add(AlertKind(name))
    since_id = r.since_id if r.HasField("since_id") else None
    if since_id is not None and since_id < 0:
        violations.append(("since_id", "must not be negative"))
    heartbeat = default_heartbeat
    if r.HasField("heartbeat_interval"):
        heartbeat = r.heartbeat_interval.ToTimedelta().total_seconds()
        if not MIN_HEARTBEAT_S <= heartbeat <= MAX_HEARTBEAT_S:
            violations.append(("heartbeat_interval", f"between {MIN_HEARTBEAT_S:.0f} s and {MAX_HEARTBEAT_S:.0f} s"))
    if len(r.subject_prefix) > 256:
        violations.append(("subject_prefix", "at most 256 characters"))
    if violations:
        raise InvalidArgument(violations)
    return AlertFilter(tenant_id, severity, frozenset(kinds), r.subject_prefix), since_id, heartbeat
