"""The strings stored for the domain's enums (columns, jsonb keys, PL/pgSQL literals).

They equal the enums' values today, but are spelled out here, in the store, so that the domain can
rename or re-value a member without silently changing what the tables, the SQL functions of
migrations/ and the rows older versions wrote contain (tests/unit/test_store_codes.py pins them).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from meterd.domain.alerts import AlertKind, Severity
from meterd.domain.limits import LimitAction, Metric, Partition
from meterd.domain.quota import ReservationState
from meterd.domain.windows import WindowKind

E = TypeVar("E", bound=Enum)

METRIC = {
    Metric.REQUESTS: "requests",
    Metric.INPUT_TOKENS: "input_tokens",
    Metric.OUTPUT_TOKENS: "output_tokens",
    Metric.TOTAL_TOKENS: "total_tokens",
    Metric.COST_NANOS: "cost_nanos",
    Metric.UNITS: "units",
    Metric.FAILED_CALLS: "failed_calls",
}
WINDOW_KIND = {
    WindowKind.MINUTE: "minute",
    WindowKind.HOUR: "hour",
    WindowKind.DAY: "day",
    WindowKind.WEEK: "week",
    WindowKind.MONTH: "month",
    WindowKind.FIXED: "fixed",
    WindowKind.SLIDING: "sliding",
}
PARTITION = {Partition.SHARED: "shared", Partition.PER_SUBJECT: "per_subject", Partition.PER_API_KEY: "per_api_key"}
ACTION = {LimitAction.DENY: "deny", LimitAction.WARN: "warn", LimitAction.SHADOW: "shadow"}
ALERT_KIND = {
    AlertKind.LIMIT_THRESHOLD: "limit_threshold",
    AlertKind.WINDOW_COST: "window_cost",
    AlertKind.CALL_COST: "call_cost",
    AlertKind.ERROR_RATE: "error_rate",
    AlertKind.LATENCY_P95: "latency_p95",
    AlertKind.UNPRICED_MODEL: "unpriced_model",
    AlertKind.DENIALS: "denials",
    AlertKind.RESERVATION_EXPIRED: "reservation_expired",
    AlertKind.PROJECTED_OVER_BUDGET: "projected_over_budget",
    AlertKind.REPORT_DIGEST: "report_digest",
}
SEVERITY = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "critical"}
RESERVATION_STATE = {
    ReservationState.ACTIVE: "active",
    ReservationState.SETTLED: "settled",
    ReservationState.RELEASED: "released",
    ReservationState.EXPIRED: "expired",
}

ALL = (METRIC, WINDOW_KIND, PARTITION, ACTION, ALERT_KIND, SEVERITY, RESERVATION_STATE)


def _reverse(codes: dict[E, str]) -> dict[str, E]:
    return {code: member for member, code in codes.items()}


METRIC_OF = _reverse(METRIC)
WINDOW_KIND_OF = _reverse(WINDOW_KIND)
PARTITION_OF = _reverse(PARTITION)
ACTION_OF = _reverse(ACTION)
ALERT_KIND_OF = _reverse(ALERT_KIND)
SEVERITY_OF = _reverse(SEVERITY)
RESERVATION_STATE_OF = _reverse(RESERVATION_STATE)
