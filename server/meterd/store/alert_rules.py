"""An alert rule and its row in alert_rules: the kind's own fields live in the jsonb `params`
column, the scope in `scope`, the channels in `channels` (the domain's AlertRule knows none of it)."""

from __future__ import annotations

from typing import Any

from meterd.domain.alerts import AlertRule
from meterd.domain.channels import Channel
from meterd.domain.limits import Selector
from meterd.domain.windows import WindowSpec
from meterd.store.codes import ALERT_KIND_OF, SEVERITY_OF, WINDOW_KIND, WINDOW_KIND_OF


def rule_params(rule: AlertRule) -> dict[str, Any]:
    """The jsonb `params` column: the kind's own fields."""
    p: dict[str, Any] = {}
    if rule.thresholds:
        p["thresholds"] = list(rule.thresholds)
    if rule.limit_id:
        p["limit_id"] = rule.limit_id
    if rule.amount_nanos:
        p["amount_nanos"] = rule.amount_nanos
    if rule.window is not None:
        p["window_kind"] = WINDOW_KIND[rule.window.kind]
        p["window_seconds"] = rule.window.seconds
    if rule.error_rate:
        p["error_rate"] = rule.error_rate
    if rule.min_calls:
        p["min_calls"] = rule.min_calls
    if rule.latency_us:
        p["latency_us"] = rule.latency_us
    if rule.count:
        p["count"] = rule.count
    return p


def rule_from_row(row: dict[str, Any]) -> AlertRule:
    p = row["params"] or {}
    window = WindowSpec(WINDOW_KIND_OF[p["window_kind"]], p.get("window_seconds", 0)) if "window_kind" in p else None
    return AlertRule(
        id=row["id"],
        kind=ALERT_KIND_OF[row["kind"]],
        severity=SEVERITY_OF[row["severity"]],
        scope=Selector.from_json(row["scope"] or {}),
        thresholds=tuple(p.get("thresholds", ())),
        limit_id=p.get("limit_id", ""),
        amount_nanos=p.get("amount_nanos", 0),
        window=window,
        error_rate=p.get("error_rate", 0.0),
        min_calls=p.get("min_calls", 0),
        latency_us=p.get("latency_us", 0),
        count=p.get("count", 0),
        cooldown_s=row["cooldown_s"],
        webhook_url=row["webhook_url"],
        webhook_secret=row["webhook_secret"],
        disabled=row["disabled"],
        channels=tuple(Channel.from_json(c) for c in row.get("channels") or ()),
        message_template=row.get("message_template") or "",
    )
