"""Alert rules, alerts and stream filters: validation and the evaluator's judgements, no I/O.

Mirrors meter.v1 AlertRule / Alert / AlertKind / Severity without importing them (the API layer
converts enums to and from the lower-case names used here; store/alerts.py maps rules to rows).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from meterd.domain.channels import Channel, validate_channels, validate_template
from meterd.domain.digests import digest_problems
from meterd.domain.errors import InvalidArgument
from meterd.domain.limits import INT64_MAX, MAX_THRESHOLD_PERCENT, Selector, validate_selector
from meterd.domain.windows import MAX_FIXED_SECONDS, WindowKind, WindowSpec

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_COOLDOWN_S = 30 * 86400
MAX_WEBHOOK_URL = 2048
MAX_SECRET = 256


class AlertKind(StrEnum):
    LIMIT_THRESHOLD = "limit_threshold"
    WINDOW_COST = "window_cost"
    CALL_COST = "call_cost"
    ERROR_RATE = "error_rate"
    LATENCY_P95 = "latency_p95"
    UNPRICED_MODEL = "unpriced_model"
    DENIALS = "denials"
    RESERVATION_EXPIRED = "reservation_expired"
    PROJECTED_OVER_BUDGET = "projected_over_budget"
    REPORT_DIGEST = "report_digest"  # scheduled by the evaluator too, but not judged (domain/digests.py)


# Evaluated periodically by the leader replica; the others are raised by triggers in the writing
# transaction (LIMIT_THRESHOLD on counters, CALL_COST on calls).
PERIODIC_KINDS = frozenset(
    {
        AlertKind.WINDOW_COST,
        AlertKind.ERROR_RATE,
        AlertKind.LATENCY_P95,
        AlertKind.UNPRICED_MODEL,
        AlertKind.DENIALS,
        AlertKind.RESERVATION_EXPIRED,
        AlertKind.PROJECTED_OVER_BUDGET,
    }
)
# Read from the hourly rollups, which have no labels and whole hours only.
ROLLUP_KINDS = frozenset(
    {
        AlertKind.WINDOW_COST,
        AlertKind.ERROR_RATE,
        AlertKind.LATENCY_P95,
        AlertKind.UNPRICED_MODEL,
        AlertKind.PROJECTED_OVER_BUDGET,
    }
)
# PROJECTED_OVER_BUDGET's rate: the cost of this long before now (domain/forecast.py).
PROJECTION_BASIS = dt.timedelta(days=7)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


@dataclasses.dataclass(frozen=True)
class AlertRule:
    id: str
    kind: AlertKind
    severity: Severity
    scope: Selector = Selector()
    thresholds: tuple[int, ...] = ()  # LIMIT_THRESHOLD percents
    limit_id: str = ""  # LIMIT_THRESHOLD
    amount_nanos: int = 0  # WINDOW_COST, CALL_COST
    window: WindowSpec | None = None  # periodic kinds
    error_rate: float = 0.0  # ERROR_RATE, 0..1
    min_calls: int = 0  # ERROR_RATE, LATENCY_P95
    latency_us: int = 0  # LATENCY_P95
    count: int = 0  # DENIALS, RESERVATION_EXPIRED
    cooldown_s: int = 0
    webhook_url: str = ""
    webhook_secret: str = ""
    disabled: bool = False
    channels: tuple[Channel, ...] = ()  # besides the legacy webhook_url (domain/channels.py)
    message_template: str = ""  # "" = channels.DEFAULT_TEMPLATE


def _enum(enum, value: str, field: str, violations: list[tuple[str, str]]):
    try:
        return enum(value)
    except ValueError:
        violations.append((field, "required" if not value else f"unknown value {value!r}"))
        return None


def validate_rule(
    *,
    id: str,
    kind: str,
    severity: str,
    scope: Selector,
    thresholds: Iterable[int] = (),
    limit_id: str = "",
    amount_nanos: int = 0,
    window_kind: str = "",
    window_seconds: int = 0,
    window_nanos: int = 0,
    error_rate: float = 0.0,
    min_calls: int = 0,
    latency_us: int = 0,
    count: int = 0,
    cooldown_s: float = 0,
    webhook_url: str = "",
    webhook_secret: str = "",
    disabled: bool = False,
    channels: Iterable[dict[str, Any]] = (),
    message_template: str = "",
) -> AlertRule:
    """Raw rule fields → a rule, or InvalidArgument listing every problem (field paths as in the proto)."""
    v: list[tuple[str, str]] = []
    if not id:
        v.append(("rule.id", "required"))
    elif not _ID_RE.fullmatch(id):
        v.append(("rule.id", "1-64 characters of A-Z a-z 0-9 . _ : -"))
    kind_v = _enum(AlertKind, kind, "rule.kind", v)
    severity_v = _enum(Severity, severity, "rule.severity", v)
    scope_errors: list[tuple[str, str]] = []
    clean_scope = validate_selector(scope, scope_errors)
    v += [(f.replace("limit.selector", "rule.scope"), why) for f, why in scope_errors]
    thresholds = sorted(set(thresholds))
    if any(not 1 <= t <= MAX_THRESHOLD_PERCENT for t in thresholds):
        v.append(("rule.thresholds_percent", f"each must be 1..{MAX_THRESHOLD_PERCENT}"))
    window = None
    if window_kind:
        wk = _enum(WindowKind, window_kind, "rule.window.kind", v)
        if wk is not None:
            if window_nanos:
                v.append(("rule.window.duration", "whole seconds only"))
            elif wk is WindowKind.SLIDING:
                v.append(
                    ("rule.window.kind", "sliding windows are for limits; rules look at calendar or fixed windows")
                )
            elif wk.has_duration and not 1 <= window_seconds <= MAX_FIXED_SECONDS:
                v.append(("rule.window.duration", f"a fixed window needs 1..{MAX_FIXED_SECONDS} seconds"))
            elif not wk.has_duration and window_seconds:
                v.append(("rule.window.duration", f"must not be set for a {wk} window"))
            else:
                window = WindowSpec(wk, window_seconds if wk.has_duration else 0)
    if not 0 <= cooldown_s <= MAX_COOLDOWN_S:
        v.append(("rule.cooldown", f"0 .. {MAX_COOLDOWN_S} seconds"))
    if webhook_url:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(webhook_url) > MAX_WEBHOOK_URL:
            v.append(("rule.webhook_url", "an http:// or https:// URL (at most 2048 characters)"))
        if not webhook_secret:
            v.append(("rule.webhook_secret", "required with a webhook_url (it signs every delivery)"))
    if len(webhook_secret) > MAX_SECRET:
        v.append(("rule.webhook_secret", f"at most {MAX_SECRET} characters"))

    clean_channels = validate_channels(channels, v)
    validate_template(message_template, v)

    def need(cond: bool, field: str, why: str) -> None:
        if not cond:
            v.append((field, why))

    def unused(value, field: str) -> None:
        if value:
            v.append((field, f"not used by {kind_v.value} rules; leave it unset"))

    if kind_v is not None:
        k = kind_v
        if k in PERIODIC_KINDS:
            need(window is not None or bool(window_kind), "rule.window", f"required for {k.value} rules")
            if window is not None and k in ROLLUP_KINDS:
                whole_hours = window.kind not in (WindowKind.MINUTE,) and (
                    not window.kind.has_duration or window.seconds % 3600 == 0
                )
                need(whole_hours, "rule.window", "read from hourly rollups: hour, day, week, month or whole hours")
            if k in ROLLUP_KINDS or k is AlertKind.DENIALS:
                # Rollups and denial counts have no labels: ignoring them would silently widen the rule.
                need(
                    not clean_scope.labels, "rule.scope.labels", "not usable in this rule (its figures have no labels)"
                )
        elif k is AlertKind.REPORT_DIGEST:
            digest_problems(window, clean_scope, cooldown_s, v)
        else:
            unused(window_kind, "rule.window")
        if k is AlertKind.LIMIT_THRESHOLD:
            for name in ("provider", "model", "operation"):
                unused(getattr(clean_scope, name), f"rule.scope.{name}")
            unused(clean_scope.labels, "rule.scope.labels")
            if limit_id and not _ID_RE.fullmatch(limit_id):
                v.append(("rule.limit_id", "a limit id: 1-64 characters of A-Z a-z 0-9 . _ : -"))
        else:
            unused(thresholds, "rule.thresholds_percent")
            unused(limit_id, "rule.limit_id")
        if k in (AlertKind.WINDOW_COST, AlertKind.CALL_COST, AlertKind.PROJECTED_OVER_BUDGET):
            need(0 < amount_nanos <= INT64_MAX, "rule.amount_nanos", "must be greater than 0 (nano-USD)")
        else:
            unused(amount_nanos, "rule.amount_nanos")
        if k is AlertKind.ERROR_RATE:
            need(0 < error_rate < 1, "rule.error_rate", "a fraction between 0 and 1 (exclusive)")
        else:
            unused(error_rate, "rule.error_rate")
        if k in (AlertKind.ERROR_RATE, AlertKind.LATENCY_P95):
            need(0 <= min_calls <= INT64_MAX, "rule.min_calls", "must not be negative")
        else:
            unused(min_calls, "rule.min_calls")
        if k is AlertKind.LATENCY_P95:
            need(latency_us > 0, "rule.latency", "required: the p95 bound")
        else:
            unused(latency_us, "rule.latency")
        if k in (AlertKind.DENIALS, AlertKind.RESERVATION_EXPIRED):
            need(0 <= count <= INT64_MAX, "rule.count", "must not be negative (0: alert on the first one)")
        else:
            unused(count, "rule.count")
    if v:
        raise InvalidArgument(v)
    return AlertRule(
        id=id,
        kind=kind_v,
        severity=severity_v,
        scope=clean_scope,
        thresholds=tuple(thresholds),
        limit_id=limit_id,
        amount_nanos=amount_nanos,
        window=window,
        error_rate=error_rate,
        min_calls=min_calls,
        latency_us=latency_us,
        count=count,
        cooldown_s=int(cooldown_s),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        disabled=disabled,
        channels=clean_channels,
        message_template=message_template,
    )


@dataclasses.dataclass(frozen=True)
class Alert:
    id: int
    tenant_id: str
    rule_id: str
    kind: AlertKind
    severity: Severity
    subject: str
    provider: str
    model: str
    limit_id: str
    metric: str
    observed: float
    threshold: float
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    message: str
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The webhook body."""
        out = dataclasses.asdict(self)
        for key in ("window_start", "window_end", "created_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["kind"], out["severity"] = self.kind.value, self.severity.value
        return out


@dataclasses.dataclass(frozen=True)
class AlertFilter:
    """What a stream wants: its tenant, severity at least, kinds (empty: all), subject prefix."""

    tenant_id: str
    min_severity: Severity | None = None
    kinds: frozenset[AlertKind] = frozenset()
    subject_prefix: str = ""

    def matches(self, alert: Alert) -> bool:
        return (
            alert.tenant_id == self.tenant_id
            and (self.min_severity is None or alert.severity.rank >= self.min_severity.rank)
            and (not self.kinds or alert.kind in self.kinds)
            and alert.subject.startswith(self.subject_prefix)
        )


# ---- the periodic evaluator's judgements -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An alert the evaluator wants raised (meter_raise_alert decides dedup and cooldown)."""

    rule: AlertRule
    dedup_key: str
    cooldown_key: str
    subject: str
    provider: str
    model: str
    metric: str
    observed: float
    threshold: float
    window_start: dt.datetime
    window_end: dt.datetime
    message: str


@dataclasses.dataclass(frozen=True)
class GroupFigures:
    """Rollup sums of one (provider, model) group in a window (or of the whole scope)."""

    provider: str
    model: str
    calls: int
    errors: int
    cost_nanos: int
    unpriced_calls: int
    latency_buckets: list[int]
