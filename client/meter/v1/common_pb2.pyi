import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_REQUESTS: _ClassVar[Metric]
    METRIC_INPUT_TOKENS: _ClassVar[Metric]
    METRIC_OUTPUT_TOKENS: _ClassVar[Metric]
    METRIC_TOTAL_TOKENS: _ClassVar[Metric]
    METRIC_COST_NANOS: _ClassVar[Metric]
    METRIC_UNITS: _ClassVar[Metric]
    METRIC_FAILED_CALLS: _ClassVar[Metric]

class WindowKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_KIND_UNSPECIFIED: _ClassVar[WindowKind]
    WINDOW_KIND_MINUTE: _ClassVar[WindowKind]
    WINDOW_KIND_HOUR: _ClassVar[WindowKind]
    WINDOW_KIND_DAY: _ClassVar[WindowKind]
    WINDOW_KIND_WEEK: _ClassVar[WindowKind]
    WINDOW_KIND_MONTH: _ClassVar[WindowKind]
    WINDOW_KIND_FIXED: _ClassVar[WindowKind]
    WINDOW_KIND_SLIDING: _ClassVar[WindowKind]

class LimitAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMIT_ACTION_UNSPECIFIED: _ClassVar[LimitAction]
    LIMIT_ACTION_DENY: _ClassVar[LimitAction]
    LIMIT_ACTION_WARN: _ClassVar[LimitAction]
    LIMIT_ACTION_SHADOW: _ClassVar[LimitAction]

class Partition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTITION_UNSPECIFIED: _ClassVar[Partition]
    PARTITION_SHARED: _ClassVar[Partition]
    PARTITION_PER_SUBJECT: _ClassVar[Partition]
    PARTITION_PER_API_KEY: _ClassVar[Partition]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCESS: _ClassVar[Outcome]
    OUTCOME_ERROR: _ClassVar[Outcome]

class CostSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COST_SOURCE_UNSPECIFIED: _ClassVar[CostSource]
    COST_SOURCE_CATALOG: _ClassVar[CostSource]
    COST_SOURCE_CLIENT: _ClassVar[CostSource]
    COST_SOURCE_UNPRICED: _ClassVar[CostSource]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_LIMIT_THRESHOLD: _ClassVar[AlertKind]
    ALERT_KIND_WINDOW_COST: _ClassVar[AlertKind]
    ALERT_KIND_CALL_COST: _ClassVar[AlertKind]
    ALERT_KIND_ERROR_RATE: _ClassVar[AlertKind]
    ALERT_KIND_LATENCY_P95: _ClassVar[AlertKind]
    ALERT_KIND_UNPRICED_MODEL: _ClassVar[AlertKind]
    ALERT_KIND_DENIALS: _ClassVar[AlertKind]
    ALERT_KIND_RESERVATION_EXPIRED: _ClassVar[AlertKind]
    ALERT_KIND_PROJECTED_OVER_BUDGET: _ClassVar[AlertKind]
    ALERT_KIND_REPORT_DIGEST: _ClassVar[AlertKind]
METRIC_UNSPECIFIED: Metric
METRIC_REQUESTS: Metric
METRIC_INPUT_TOKENS: Metric
METRIC_OUTPUT_TOKENS: Metric
METRIC_TOTAL_TOKENS: Metric
METRIC_COST_NANOS: Metric
METRIC_UNITS: Metric
METRIC_FAILED_CALLS: Metric
WINDOW_KIND_UNSPECIFIED: WindowKind
WINDOW_KIND_MINUTE: WindowKind
WINDOW_KIND_HOUR: WindowKind
WINDOW_KIND_DAY: WindowKind
WINDOW_KIND_WEEK: WindowKind
WINDOW_KIND_MONTH: WindowKind
WINDOW_KIND_FIXED: WindowKind
WINDOW_KIND_SLIDING: WindowKind
LIMIT_ACTION_UNSPECIFIED: LimitAction
LIMIT_ACTION_DENY: LimitAction
LIMIT_ACTION_WARN: LimitAction
LIMIT_ACTION_SHADOW: LimitAction
PARTITION_UNSPECIFIED: Partition
PARTITION_SHARED: Partition
PARTITION_PER_SUBJECT: Partition
PARTITION_PER_API_KEY: Partition
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCESS: Outcome
OUTCOME_ERROR: Outcome
COST_SOURCE_UNSPECIFIED: CostSource
COST_SOURCE_CATALOG: CostSource
COST_SOURCE_CLIENT: CostSource
COST_SOURCE_UNPRICED: CostSource
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_LIMIT_THRESHOLD: AlertKind
ALERT_KIND_WINDOW_COST: AlertKind
ALERT_KIND_CALL_COST: AlertKind
ALERT_KIND_ERROR_RATE: AlertKind
ALERT_KIND_LATENCY_P95: AlertKind
ALERT_KIND_UNPRICED_MODEL: AlertKind
ALERT_KIND_DENIALS: AlertKind
ALERT_KIND_RESERVATION_EXPIRED: AlertKind
ALERT_KIND_PROJECTED_OVER_BUDGET: AlertKind
ALERT_KIND_REPORT_DIGEST: AlertKind

class Window(_message.Message):
    __slots__ = ("kind", "duration")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    kind: WindowKind
    duration: _duration_pb2.Duration
    def __init__(self, kind: _Optional[_Union[WindowKind, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Selector(_message.Message):
    __slots__ = ("subject", "subject_prefix", "provider", "model", "operation", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    subject_prefix: str
    provider: str
    model: str
    operation: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, subject: _Optional[str] = ..., subject_prefix: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "reasoning_tokens", "requests", "units")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., requests: _Optional[int] = ..., units: _Optional[int] = ...) -> None: ...

class CostBreakdown(_message.Message):
    __slots__ = ("input_nanos", "output_nanos", "cached_read_nanos", "cache_write_nanos", "requests_nanos", "units_nanos", "other_nanos", "cache_savings_nanos")
    INPUT_NANOS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_NANOS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_NANOS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNITS_NANOS_FIELD_NUMBER: _ClassVar[int]
    OTHER_NANOS_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVINGS_NANOS_FIELD_NUMBER: _ClassVar[int]
    input_nanos: int
    output_nanos: int
    cached_read_nanos: int
    cache_write_nanos: int
    requests_nanos: int
    units_nanos: int
    other_nanos: int
    cache_savings_nanos: int
    def __init__(self, input_nanos: _Optional[int] = ..., output_nanos: _Optional[int] = ..., cached_read_nanos: _Optional[int] = ..., cache_write_nanos: _Optional[int] = ..., requests_nanos: _Optional[int] = ..., units_nanos: _Optional[int] = ..., other_nanos: _Optional[int] = ..., cache_savings_nanos: _Optional[int] = ...) -> None: ...

class LimitStatus(_message.Message):
    __slots__ = ("limit_id", "metric", "window", "action", "partition", "max", "used", "reserved", "remaining", "window_start", "reset_at", "percent_used", "denied", "exceeded", "projected_exhausted_at")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    RESET_AT_FIELD_NUMBER: _ClassVar[int]
    PERCENT_USED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_EXHAUSTED_AT_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    metric: Metric
    window: Window
    action: LimitAction
    partition: str
    max: int
    used: int
    reserved: int
    remaining: int
    window_start: _timestamp_pb2.Timestamp
    reset_at: _timestamp_pb2.Timestamp
    percent_used: float
    denied: bool
    exceeded: bool
    projected_exhausted_at: _timestamp_pb2.Timestamp
    def __init__(self, limit_id: _Optional[str] = ..., metric: _Optional[_Union[Metric, str]] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., action: _Optional[_Union[LimitAction, str]] = ..., partition: _Optional[str] = ..., max: _Optional[int] = ..., used: _Optional[int] = ..., reserved: _Optional[int] = ..., remaining: _Optional[int] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reset_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., percent_used: _Optional[float] = ..., denied: _Optional[bool] = ..., exceeded: _Optional[bool] = ..., projected_exhausted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
