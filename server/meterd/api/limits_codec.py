"""Limits and limit statuses between protobuf messages and domain objects."""

from __future__ import annotations

from meter.v1 import admin_pb2, common_pb2
from meterd.api.convert import E, enum_value, set_ts, ts
from meterd.domain.limits import Limit, LimitAction, Metric, Selector, StoredLimit, validate_limit
from meterd.domain.quota import LimitState
from meterd.domain.windows import WindowKind


def proto_enum_name(enum, value: int, prefix: str) -> str:
    """Proto enum value → the domain's lower-case name ('' for UNSPECIFIED or unknown numbers)."""
    if value == 0 or value not in enum.values():
        return "" if value == 0 else f"unknown({value})"
    return enum.Name(value).removeprefix(prefix).lower()


def proto_enum_value(enum: type[E], name: str, prefix: str) -> E:
    return enum_value(enum, prefix + name.upper())


def selector_from_proto(s: common_pb2.Selector) -> Selector:
    return Selector(
        subject=s.subject,
        subject_prefix=s.subject_prefix,
        provider=s.provider,
        model=s.model,
        operation=s.operation,
        labels=tuple(s.labels.items()),
    )


def selector_to_proto(s: Selector) -> common_pb2.Selector:
    return common_pb2.Selector(
        subject=s.subject,
        subject_prefix=s.subject_prefix,
        provider=s.provider,
        model=s.model,
        operation=s.operation,
        labels=dict(s.labels),
    )


def limit_from_proto(p: admin_pb2.Limit) -> Limit:
    window = p.window
    return validate_limit(
        id=p.id,
        description=p.description,
        selector=selector_from_proto(p.selector),
        metric=proto_enum_name(common_pb2.Metric, p.metric, "METRIC_"),
        window_kind=proto_enum_name(common_pb2.WindowKind, window.kind, "WINDOW_KIND_"),
        window_seconds=window.duration.seconds,
        window_nanos=window.duration.nanos,
        max=p.max,
        partition=proto_enum_name(common_pb2.Partition, p.partition, "PARTITION_"),
        action=proto_enum_name(common_pb2.LimitAction, p.action, "LIMIT_ACTION_"),
        alert_thresholds=list(p.alert_thresholds_percent),
    )


def window_to_proto(limit: Limit) -> common_pb2.Window:
    window = common_pb2.Window(kind=proto_enum_value(common_pb2.WindowKind, limit.window.kind.value, "WINDOW_KIND_"))
    if limit.window.kind in (WindowKind.FIXED, WindowKind.SLIDING):
        window.duration.seconds = limit.window.seconds
    return window


def limit_to_proto(stored: StoredLimit) -> admin_pb2.Limit:
    limit = stored.limit
    return admin_pb2.Limit(
        id=limit.id,
        description=limit.description,
        selector=selector_to_proto(limit.selector),
        metric=proto_enum_value(common_pb2.Metric, limit.metric.value, "METRIC_"),
        window=window_to_proto(limit),
        max=limit.max,
        partition=proto_enum_value(common_pb2.Partition, limit.partition.value, "PARTITION_"),
        action=proto_enum_value(common_pb2.LimitAction, limit.action.value, "LIMIT_ACTION_"),
        alert_thresholds_percent=list(limit.alert_thresholds),
        create_time=ts(stored.created_at),
        update_time=ts(stored.updated_at),
    )


# Domain enum → proto number, computed once: status_to_proto runs for every matched limit of every
# CheckQuota and RecordCall answer.
_METRIC_NUMBER = {m: proto_enum_value(common_pb2.Metric, m.value, "METRIC_") for m in Metric}
_ACTION_NUMBER = {a: proto_enum_value(common_pb2.LimitAction, a.value, "LIMIT_ACTION_") for a in LimitAction}
_KIND_NUMBER = {k: proto_enum_value(common_pb2.WindowKind, k.value, "WINDOW_KIND_") for k in WindowKind}


def status_to_proto(state: LimitState) -> common_pb2.LimitStatus:
    limit = state.limit
    status = common_pb2.LimitStatus(
        limit_id=limit.id,
        metric=_METRIC_NUMBER[limit.metric],
        action=_ACTION_NUMBER[limit.action],
        partition=state.partition,
        max=limit.max,
        used=state.used,
        reserved=state.reserved,
        remaining=state.remaining,
        percent_used=state.percent_used,
        denied=state.denied,
        exceeded=state.exceeded,
    )
    status.window.kind = _KIND_NUMBER[limit.window.kind]
    if limit.window.kind.has_duration:
        status.window.duration.seconds = limit.window.seconds
    set_ts(status.window_start, state.window_start)
    set_ts(status.reset_at, state.reset_at)
    if state.projected_exhausted_at is not None:
        set_ts(status.projected_exhausted_at, state.projected_exhausted_at)
    return status
