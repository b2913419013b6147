"""Limits: what they select, what they count, their validation, and which counter a call lands in.

Mirrors meter.v1 Limit / Selector / Metric / LimitAction / Partition without importing them; the
API layer converts enums to and from the lower-case value names used here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from meterd.domain.bounds import INT64_MAX
from meterd.domain.calls import MAX_LABELS
from meterd.domain.errors import InvalidArgument
from meterd.domain.windows import MAX_FIXED_SECONDS, MAX_SLIDING_SECONDS, WindowKind, WindowSpec

MAX_SELECTOR_FIELD = 256
MAX_DESCRIPTION = 1024
MAX_THRESHOLD_PERCENT = 1000
_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Metric(StrEnum):
    REQUESTS = "requests"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    TOTAL_TOKENS = "total_tokens"
    COST_NANOS = "cost_nanos"
    UNITS = "units"
    FAILED_CALLS = "failed_calls"


class LimitAction(StrEnum):
    DENY = "deny"
    WARN = "warn"  # soft budget: allow, report, alert
    SHADOW = "shadow"  # evaluate and report only


class Partition(StrEnum):
    SHARED = "shared"
    PER_SUBJECT = "per_subject"
    PER_API_KEY = "per_api_key"


_SELECTOR_STRINGS = ("subject", "subject_prefix", "provider", "model", "operation")


@dataclass(frozen=True)
class Selector:
    """Which calls a limit applies to. Empty fields match everything; set fields must all match.

    `labels` is kept sorted by key, so equal selectors compare equal whatever order they came in.
    """

    subject: str = ""
    subject_prefix: str = ""
    provider: str = ""  # compared case-insensitively
    model: str = ""  # compared case-insensitively, as the pricing catalog does (no bypass by "GPT-4.1")
    operation: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(sorted(self.labels)))

    def matches(self, subject: str, provider: str, model: str, operation: str, labels: Mapping[str, str]) -> bool:
        return (
            (not self.subject or subject == self.subject)
            and subject.startswith(self.subject_prefix)
            and (not self.provider or provider.casefold() == self.provider.casefold())
            and (not self.model or model.casefold() == self.model.casefold())
            and (not self.operation or operation == self.operation)
            and all(labels.get(key) == value for key, value in self.labels)
        )

    def to_json(self) -> dict[str, Any]:
        """The jsonb column value: only the fields that are set (so match-all is `{}`)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _SELECTOR_STRINGS if getattr(self, name)}
        if self.labels:
            out["labels"] = dict(self.labels)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selector:
        # Unknown keys fail loudly: silently dropping a narrowing field would widen the limit.
        if unknown := set(data) - {*_SELECTOR_STRINGS, "labels"}:
            raise ValueError(f"unknown selector keys {sorted(unknown)}")
        return cls(
            **{name: str(data[name]) for name in _SELECTOR_STRINGS if name in data},
            labels=tuple((str(k), str(v)) for k, v in dict(data.get("labels") or {}).items()),
        )


@dataclass(frozen=True)
class Limit:
    id: str
    selector: Selector
    metric: Metric
    window: WindowSpec
    max: int
    partition: Partition
    action: LimitAction
    description: str = ""
    alert_thresholds: tuple[int, ...] = ()  # percents of max; empty = the tenant default
    generation: int = 1  # bumped by storage when metric, window or partition change


@dataclass(frozen=True)
class StoredLimit:
    """A limit as stored, with when it was created and last changed."""

    limit: Limit
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class Usage:
    """What one call charges to the limits it matches."""

    requests: int = 0
    input_tokens: int = 0  # uncached + cached-read + cache-write
    output_tokens: int = 0  # reasoning included
    units: int = 0
    cost_nanos: int = 0
    failed: int = 0  # 1 for a call recorded with an error outcome

    def __post_init__(self) -> None:
        for name in _USAGE_FIELDS:  # not dataclasses.fields(): one Usage per CheckQuota and per record
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= INT64_MAX:
                raise ValueError(f"{name} must be an int in [0, 2**63-1], got {value!r}")
        if self.failed > 1:
            raise ValueError(f"failed must be 0 or 1, got {self.failed}")

    def amount_for(self, metric: Metric) -> int:
        match metric:
            case Metric.REQUESTS:
                return self.requests
            case Metric.INPUT_TOKENS:
                return self.input_tokens
            case Metric.OUTPUT_TOKENS:
                return self.output_tokens
            case Metric.TOTAL_TOKENS:
                return self.input_tokens + self.output_tokens
            case Metric.COST_NANOS:
                return self.cost_nanos
            case Metric.UNITS:
                return self.units
            case Metric.FAILED_CALLS:
                return self.failed
        raise ValueError(f"unknown metric {metric!r}")


def _enum_value(
    enum: type[StrEnum], value: str, field: str, default: StrEnum | None, violations: list[tuple[str, str]]
) -> Any:
    text = value.strip().lower()
    if not text and default is not None:
        return default
    if not text:
        violations.append((field, "required"))
        return None
    try:
        return enum(text)
    except ValueError:
        violations.append((field, f"unknown value {value!r}; expected one of {', '.join(enum)}"))
        return None


def validate_selector(selector: Selector, violations: list[tuple[str, str]]) -> Selector:
    for name in _SELECTOR_STRINGS:
        if len(getattr(selector, name)) > MAX_SELECTOR_FIELD:
            violations.append((f"limit.selector.{name}", f"at most {MAX_SELECTOR_FIELD} characters"))
    if selector.subject and selector.subject_prefix:
        violations.append(("limit.selector.subject_prefix", "mutually exclusive with subject; set one of them"))
    if len(selector.labels) > MAX_LABELS:
        violations.append(("limit.selector.labels", f"at most {MAX_LABELS} labels, got {len(selector.labels)}"))
    keys = [key for key, _ in selector.labels]
    if len(set(keys)) != len(keys):
        violations.append(("limit.selector.labels", "duplicate label keys"))
    for key, value in selector.labels:
        if not key:
            violations.append(("limit.selector.labels", "label keys must not be empty"))
        elif len(key) > MAX_SELECTOR_FIELD or len(value) > MAX_SELECTOR_FIELD:
            violations.append(
                (f"limit.selector.labels[{key[:64]}]", f"keys and values are at most {MAX_SELECTOR_FIELD} characters")
            )
    # Stored lower-cased, like calls' providers, so listings show one spelling.
    return Selector(
        subject=selector.subject,
        subject_prefix=selector.subject_prefix,
        provider=selector.provider.strip().lower(),
        model=selector.model,
        operation=selector.operation,
        labels=selector.labels,
    )


def _validate_window(kind: WindowKind | None, seconds: int, nanos: int, violations: list[tuple[str, str]]) -> None:
    field = "limit.window.duration"
    if kind is None:
        return
    if not kind.has_duration:
        if seconds or nanos:
            violations.append((field, f"must not be set for a {kind} window (calendar windows have their own length)"))
        return
    top = MAX_SLIDING_SECONDS if kind is WindowKind.SLIDING else MAX_FIXED_SECONDS
    if nanos:
        violations.append((field, "whole seconds only"))
    elif not 1 <= seconds <= top:
        violations.append((field, f"a {kind} window needs a duration of 1..{top} seconds, got {seconds}"))


def validate_limit(
    *,
    id: str,
    metric: str,
    window_kind: str,
    max: int,
    window_seconds: int = 0,
    window_nanos: int = 0,
    selector: Selector | None = None,
    partition: str = "",
    action: str = "",
    description: str = "",
    alert_thresholds: Iterable[int] = (),
    generation: int = 1,
) -> Limit:
    """Check raw limit fields (enum value names, proto Duration parts); raises InvalidArgument
    listing every problem at once. Empty action / partition default to deny / shared.

    The returned limit has a lower-cased selector provider and sorted, de-duplicated thresholds.
    """
    violations: list[tuple[str, str]] = []
    if not id:
        violations.append(("limit.id", "required"))
    elif not _ID_RE.fullmatch(id):
        violations.append(("limit.id", "1-64 characters of A-Z a-z 0-9 . _ : -"))
    if len(description) > MAX_DESCRIPTION:
        violations.append(("limit.description", f"at most {MAX_DESCRIPTION} characters"))
    clean_selector = validate_selector(selector or Selector(), violations)
    metric_v = _enum_value(Metric, metric, "limit.metric", None, violations)
    kind = _enum_value(WindowKind, window_kind, "limit.window.kind", None, violations)
    _validate_window(kind, window_seconds, window_nanos, violations)
    if type(max) is not int or not 0 < max <= INT64_MAX:
        violations.append(("limit.max", "must be greater than 0 (in the metric's unit)"))
    partition_v = _enum_value(Partition, partition, "limit.partition", Partition.SHARED, violations)
    action_v = _enum_value(LimitAction, action, "limit.action", LimitAction.DENY, violations)
    thresholds = list(alert_thresholds)
    for i, pct in enumerate(thresholds):
        if type(pct) is not int or not 1 <= pct <= MAX_THRESHOLD_PERCENT:
            violations.append((f"limit.alert_thresholds_percent[{i}]", f"must be 1..{MAX_THRESHOLD_PERCENT}"))
    if violations:
        raise InvalidArgument(violations)
    return Limit(
        id=id,
        selector=clean_selector,
        metric=metric_v,
        window=WindowSpec(kind, window_seconds if kind.has_duration else 0),
        max=max,
        partition=partition_v,
        action=action_v,
        description=description,
        alert_thresholds=tuple(sorted(set(thresholds))),
        generation=generation,
    )


def partition_key(limit: Limit, subject: str, api_key_id: str) -> str:
    """The counter partition a call lands in: "" (shared), the subject, or the API key id."""
    match limit.partition:
        case Partition.SHARED:
            return ""
        case Partition.PER_SUBJECT:
            return subject
        case Partition.PER_API_KEY:
            return api_key_id
    raise ValueError(f"unknown partition {limit.partition!r}")


def matching(
    limits: Iterable[Limit], subject: str, provider: str, model: str, operation: str, labels: Mapping[str, str]
) -> list[Limit]:
    """The limits whose selector matches the call, sorted by id.

    Every transaction locks counter rows in this one order, which is what prevents deadlocks; the
    order is Python's (code point), whatever the database collation.
    """
    found = [limit for limit in limits if limit.selector.matches(subject, provider, model, operation, labels)]
    return sorted(found, key=lambda limit: limit.id)


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))
