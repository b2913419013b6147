"""A Limit from form fields (the console's admin form and `meter limits set`): names for the enums,
a cost maximum typed in dollars converted exactly to nano-USD. No web imports, so the CLI can use it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from meter.v1 import admin_pb2, common_pb2
from meterd.console import limits_view
from meterd.console.ranges import RangeError

E = TypeVar("E", bound=int)  # a proto enum (protoc's stubs type enum fields by the enum's class)

METRIC_NAMES = {name: value for value, name in limits_view.METRICS.items()}
WINDOW_NAMES = {str(kind): value for value, kind in limits_view._KINDS.items()}
PARTITIONS = {
    "shared": common_pb2.PARTITION_SHARED,
    "per_subject": common_pb2.PARTITION_PER_SUBJECT,
    "per_api_key": common_pb2.PARTITION_PER_API_KEY,
}
ACTIONS = {
    "deny": common_pb2.LIMIT_ACTION_DENY,
    "warn": common_pb2.LIMIT_ACTION_WARN,
    "shadow": common_pb2.LIMIT_ACTION_SHADOW,
}


def text_field(form, name: str, size: int = 200) -> str:
    return str(form.get(name, "")).strip()[:size]


def _choice(form, name: str, choices: Mapping[str, E]) -> E:
    value = text_field(form, name)
    if value not in choices:
        raise RangeError(f"{name} is one of {', '.join(choices)}")
    return choices[value]


def limit_from_form(form) -> admin_pb2.Limit:
    """A Limit from the form; a cost maximum is typed in dollars and converted exactly to nanos."""
    metric = _choice(form, "metric", METRIC_NAMES)
    raw_max = text_field(form, "max", 40).replace(",", "").lstrip("$")
    try:
        amount = Decimal(raw_max)
    except InvalidOperation:
        raise RangeError(f"max must be a number, got {raw_max!r}") from None
    if metric == common_pb2.METRIC_COST_NANOS:
        amount = amount.scaleb(9)
    if amount != amount.to_integral_value():
        raise RangeError("max must be whole (a cost: at most 9 decimals of a dollar)")
    window = common_pb2.Window(kind=_choice(form, "window", WINDOW_NAMES))
    seconds = text_field(form, "seconds", 12)
    if seconds:
        if not seconds.isdigit():
            raise RangeError("window seconds must be a whole number")
        window.duration.seconds = int(seconds)
    thresholds = [t.strip() for t in text_field(form, "thresholds").split(",") if t.strip()]
    if not all(t.isdigit() for t in thresholds):
        raise RangeError("alert thresholds are whole percents, e.g. 80,100")
    return admin_pb2.Limit(
        id=text_field(form, "id"),
        description=text_field(form, "description", 500),
        selector=common_pb2.Selector(
            subject=text_field(form, "subject"),
            subject_prefix=text_field(form, "subject_prefix"),
            provider=text_field(form, "provider"),
            model=text_field(form, "model"),
            operation=text_field(form, "operation"),
        ),
        metric=metric,
        window=window,
        max=int(amount),
        partition=_choice(form, "partition", PARTITIONS),
        action=_choice(form, "action", ACTIONS),
        alert_thresholds_percent=[int(t) for t in thresholds],
    )
