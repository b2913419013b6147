import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from meter.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_MODE_UNSPECIFIED: _ClassVar[CheckMode]
    CHECK_MODE_CHECK_ONLY: _ClassVar[CheckMode]
    CHECK_MODE_RESERVE: _ClassVar[CheckMode]

class GroupBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_BY_UNSPECIFIED: _ClassVar[GroupBy]
    GROUP_BY_SUBJECT: _ClassVar[GroupBy]
    GROUP_BY_PROVIDER: _ClassVar[GroupBy]
    GROUP_BY_MODEL: _ClassVar[GroupBy]
    GROUP_BY_OPERATION: _ClassVar[GroupBy]
    GROUP_BY_LABEL: _ClassVar[GroupBy]
    GROUP_BY_TIME: _ClassVar[GroupBy]
    GROUP_BY_ERROR_CODE: _ClassVar[GroupBy]

class TimeBucket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_BUCKET_UNSPECIFIED: _ClassVar[TimeBucket]
    TIME_BUCKET_HOUR: _ClassVar[TimeBucket]
    TIME_BUCKET_DAY: _ClassVar[TimeBucket]
    TIME_BUCKET_WEEK: _ClassVar[TimeBucket]
    TIME_BUCKET_MONTH: _ClassVar[TimeBucket]

class UsageOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_ORDER_UNSPECIFIED: _ClassVar[UsageOrder]
    USAGE_ORDER_COST: _ClassVar[UsageOrder]
    USAGE_ORDER_CALLS: _ClassVar[UsageOrder]
    USAGE_ORDER_TOTAL_TOKENS: _ClassVar[UsageOrder]
    USAGE_ORDER_ERRORS: _ClassVar[UsageOrder]
    USAGE_ORDER_LATENCY_P95: _ClassVar[UsageOrder]
    USAGE_ORDER_ERROR_RATE: _ClassVar[UsageOrder]

class CallOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_ORDER_UNSPECIFIED: _ClassVar[CallOrder]
    CALL_ORDER_NEWEST: _ClassVar[CallOrder]
    CALL_ORDER_COST: _ClassVar[CallOrder]
    CALL_ORDER_LATENCY: _ClassVar[CallOrder]

class CandidateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_SOURCE_UNSPECIFIED: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_REQUEST: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_EQUIVALENCE_LIST: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_SAME_PROVIDER: _ClassVar[CandidateSource]
CHECK_MODE_UNSPECIFIED: CheckMode
CHECK_MODE_CHECK_ONLY: CheckMode
CHECK_MODE_RESERVE: CheckMode
GROUP_BY_UNSPECIFIED: GroupBy
GROUP_BY_SUBJECT: GroupBy
GROUP_BY_PROVIDER: GroupBy
GROUP_BY_MODEL: GroupBy
GROUP_BY_OPERATION: GroupBy
GROUP_BY_LABEL: GroupBy
GROUP_BY_TIME: GroupBy
GROUP_BY_ERROR_CODE: GroupBy
TIME_BUCKET_UNSPECIFIED: TimeBucket
TIME_BUCKET_HOUR: TimeBucket
TIME_BUCKET_DAY: TimeBucket
TIME_BUCKET_WEEK: TimeBucket
TIME_BUCKET_MONTH: TimeBucket
USAGE_ORDER_UNSPECIFIED: UsageOrder
USAGE_ORDER_COST: UsageOrder
USAGE_ORDER_CALLS: UsageOrder
USAGE_ORDER_TOTAL_TOKENS: UsageOrder
USAGE_ORDER_ERRORS: UsageOrder
USAGE_ORDER_LATENCY_P95: UsageOrder
USAGE_ORDER_ERROR_RATE: UsageOrder
CALL_ORDER_UNSPECIFIED: CallOrder
CALL_ORDER_NEWEST: CallOrder
CALL_ORDER_COST: CallOrder
CALL_ORDER_LATENCY: CallOrder
CANDIDATE_SOURCE_UNSPECIFIED: CandidateSource
CANDIDATE_SOURCE_REQUEST: CandidateSource
CANDIDATE_SOURCE_EQUIVALENCE_LIST: CandidateSource
CANDIDATE_SOURCE_SAME_PROVIDER: CandidateSource

class Estimate(_message.Message):
    __slots__ = ("input_tokens", "max_output_tokens", "requests", "units", "cost_nanos", "cached_read_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    max_output_tokens: int
    requests: int
    units: int
    cost_nanos: int
    cached_read_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., max_output_tokens: _Optional[int] = ..., requests: _Optional[int] = ..., units: _Optional[int] = ..., cost_nanos: _Optional[int] = ..., cached_read_tokens: _Optional[int] = ...) -> None: ...

class CheckQuotaRequest(_message.Message):
    __slots__ = ("subject", "provider", "model", "operation", "labels", "estimate", "mode", "reservation_ttl", "reservation_id", "service_tier")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_TTL_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    subject: str
    provider: str
    model: str
    operation: str
    labels: _containers.ScalarMap[str, str]
    estimate: Estimate
    mode: CheckMode
    reservation_ttl: _duration_pb2.Duration
    reservation_id: str
    service_tier: str
    def __init__(self, subject: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., estimate: _Optional[_Union[Estimate, _Mapping]] = ..., mode: _Optional[_Union[CheckMode, str]] = ..., reservation_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reservation_id: _Optional[str] = ..., service_tier: _Optional[str] = ...) -> None: ...

class CheckQuotaResponse(_message.Message):
    __slots__ = ("allowed", "limits", "no_limits_matched", "retry_after", "estimated_cost_nanos", "unpriced", "reservation_id", "reservation_expires_at", "evaluated_at")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    NO_LIMITS_MATCHED_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    limits: _containers.RepeatedCompositeFieldContainer[_common_pb2.LimitStatus]
    no_limits_matched: bool
    retry_after: _duration_pb2.Duration
    estimated_cost_nanos: int
    unpriced: bool
    reservation_id: str
    reservation_expires_at: _timestamp_pb2.Timestamp
    evaluated_at: _timestamp_pb2.Timestamp
    def __init__(self, allowed: _Optional[bool] = ..., limits: _Optional[_Iterable[_Union[_common_pb2.LimitStatus, _Mapping]]] = ..., no_limits_matched: _Optional[bool] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_cost_nanos: _Optional[int] = ..., unpriced: _Optional[bool] = ..., reservation_id: _Optional[str] = ..., reservation_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExtendReservationRequest(_message.Message):
    __slots__ = ("reservation_id", "additional", "ttl")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    additional: Estimate
    ttl: _duration_pb2.Duration
    def __init__(self, reservation_id: _Optional[str] = ..., additional: _Optional[_Union[Estimate, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExtendReservationResponse(_message.Message):
    __slots__ = ("allowed", "limits", "retry_after", "reservation_expires_at", "reserved_cost_nanos")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESERVED_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    limits: _containers.RepeatedCompositeFieldContainer[_common_pb2.LimitStatus]
    retry_after: _duration_pb2.Duration
    reservation_expires_at: _timestamp_pb2.Timestamp
    reserved_cost_nanos: int
    def __init__(self, allowed: _Optional[bool] = ..., limits: _Optional[_Iterable[_Union[_common_pb2.LimitStatus, _Mapping]]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reservation_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reserved_cost_nanos: _Optional[int] = ...) -> None: ...

class ReleaseReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseReservationResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class RecordCallRequest(_message.Message):
    __slots__ = ("call_id", "reservation_id", "subject", "provider", "model", "operation", "labels", "usage", "latency", "time_to_first_token", "retry_count", "outcome", "error_code", "error_message", "occurred_at", "cost_nanos", "metadata", "service_tier")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    reservation_id: str
    subject: str
    provider: str
    model: str
    operation: str
    labels: _containers.ScalarMap[str, str]
    usage: _common_pb2.Usage
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    retry_count: int
    outcome: _common_pb2.Outcome
    error_code: str
    error_message: str
    occurred_at: _timestamp_pb2.Timestamp
    cost_nanos: int
    metadata: _containers.ScalarMap[str, str]
    service_tier: str
    def __init__(self, call_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., subject: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_count: _Optional[int] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cost_nanos: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., service_tier: _Optional[str] = ...) -> None: ...

class RecordCallResponse(_message.Message):
    __slots__ = ("call_id", "duplicate", "cost_nanos", "cost_source", "price_id", "reservation_settled", "limits", "recorded_at", "cost_breakdown")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    COST_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_SETTLED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    COST_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    duplicate: bool
    cost_nanos: int
    cost_source: _common_pb2.CostSource
    price_id: str
    reservation_settled: bool
    limits: _containers.RepeatedCompositeFieldContainer[_common_pb2.LimitStatus]
    recorded_at: _timestamp_pb2.Timestamp
    cost_breakdown: _common_pb2.CostBreakdown
    def __init__(self, call_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., cost_nanos: _Optional[int] = ..., cost_source: _Optional[_Union[_common_pb2.CostSource, str]] = ..., price_id: _Optional[str] = ..., reservation_settled: _Optional[bool] = ..., limits: _Optional[_Iterable[_Union[_common_pb2.LimitStatus, _Mapping]]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cost_breakdown: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ...) -> None: ...

class RecordCallsRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[RecordCallRequest]
    def __init__(self, calls: _Optional[_Iterable[_Union[RecordCallRequest, _Mapping]]] = ...) -> None: ...

class RecordCallResult(_message.Message):
    __slots__ = ("index", "response", "error_code", "error_message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    response: RecordCallResponse
    error_code: str
    error_message: str
    def __init__(self, index: _Optional[int] = ..., response: _Optional[_Union[RecordCallResponse, _Mapping]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class RecordCallsResponse(_message.Message):
    __slots__ = ("results", "recorded", "duplicates", "failed")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordCallResult]
    recorded: int
    duplicates: int
    failed: int
    def __init__(self, results: _Optional[_Iterable[_Union[RecordCallResult, _Mapping]]] = ..., recorded: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class UsageFilter(_message.Message):
    __slots__ = ("subject", "subject_prefix", "provider", "model", "operation", "labels", "outcome", "error_code")
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
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    subject: str
    subject_prefix: str
    provider: str
    model: str
    operation: str
    labels: _containers.ScalarMap[str, str]
    outcome: _common_pb2.Outcome
    error_code: str
    def __init__(self, subject: _Optional[str] = ..., subject_prefix: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., error_code: _Optional[str] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("start", "end", "filter", "group_by", "label_key", "time_bucket", "order_by", "descending", "limit", "include_projection", "forecast_horizon", "forecast_basis", "include_limits")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    LABEL_KEY_FIELD_NUMBER: _ClassVar[int]
    TIME_BUCKET_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROJECTION_FIELD_NUMBER: _ClassVar[int]
    FORECAST_HORIZON_FIELD_NUMBER: _ClassVar[int]
    FORECAST_BASIS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    filter: UsageFilter
    group_by: _containers.RepeatedScalarFieldContainer[GroupBy]
    label_key: str
    time_bucket: TimeBucket
    order_by: UsageOrder
    descending: bool
    limit: int
    include_projection: bool
    forecast_horizon: _duration_pb2.Duration
    forecast_basis: _duration_pb2.Duration
    include_limits: bool
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filter: _Optional[_Union[UsageFilter, _Mapping]] = ..., group_by: _Optional[_Iterable[_Union[GroupBy, str]]] = ..., label_key: _Optional[str] = ..., time_bucket: _Optional[_Union[TimeBucket, str]] = ..., order_by: _Optional[_Union[UsageOrder, str]] = ..., descending: _Optional[bool] = ..., limit: _Optional[int] = ..., include_projection: _Optional[bool] = ..., forecast_horizon: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., forecast_basis: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., include_limits: _Optional[bool] = ...) -> None: ...

class UsageStats(_message.Message):
    __slots__ = ("calls", "successes", "errors", "error_rate", "input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "reasoning_tokens", "requests", "units", "cost_nanos", "unpriced_calls", "cost_nanos_per_1k_tokens", "cache_hit_rate", "latency_avg", "latency_p50", "latency_p95", "latency_p99", "output_tokens_per_second", "expired_reservations", "cost_breakdown", "retry_count")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_CALLS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_PER_1K_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_AVG_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    COST_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    calls: int
    successes: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    cost_nanos: int
    unpriced_calls: int
    cost_nanos_per_1k_tokens: float
    cache_hit_rate: float
    latency_avg: _duration_pb2.Duration
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    output_tokens_per_second: float
    expired_reservations: int
    cost_breakdown: _common_pb2.CostBreakdown
    retry_count: int
    def __init__(self, calls: _Optional[int] = ..., successes: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., requests: _Optional[int] = ..., units: _Optional[int] = ..., cost_nanos: _Optional[int] = ..., unpriced_calls: _Optional[int] = ..., cost_nanos_per_1k_tokens: _Optional[float] = ..., cache_hit_rate: _Optional[float] = ..., latency_avg: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., output_tokens_per_second: _Optional[float] = ..., expired_reservations: _Optional[int] = ..., cost_breakdown: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., retry_count: _Optional[int] = ...) -> None: ...

class UsageKey(_message.Message):
    __slots__ = ("subject", "provider", "model", "operation", "label_value", "bucket_start", "error_code")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LABEL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_START_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    subject: str
    provider: str
    model: str
    operation: str
    label_value: str
    bucket_start: _timestamp_pb2.Timestamp
    error_code: str
    def __init__(self, subject: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., label_value: _Optional[str] = ..., bucket_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_code: _Optional[str] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("key", "stats")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    key: UsageKey
    stats: UsageStats
    def __init__(self, key: _Optional[_Union[UsageKey, _Mapping]] = ..., stats: _Optional[_Union[UsageStats, _Mapping]] = ...) -> None: ...

class Projection(_message.Message):
    __slots__ = ("month_to_date_cost_nanos", "daily_run_rate_cost_nanos", "projected_month_cost_nanos", "basis_days", "month_end")
    MONTH_TO_DATE_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    DAILY_RUN_RATE_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_MONTH_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    BASIS_DAYS_FIELD_NUMBER: _ClassVar[int]
    MONTH_END_FIELD_NUMBER: _ClassVar[int]
    month_to_date_cost_nanos: int
    daily_run_rate_cost_nanos: int
    projected_month_cost_nanos: int
    basis_days: int
    month_end: _timestamp_pb2.Timestamp
    def __init__(self, month_to_date_cost_nanos: _Optional[int] = ..., daily_run_rate_cost_nanos: _Optional[int] = ..., projected_month_cost_nanos: _Optional[int] = ..., basis_days: _Optional[int] = ..., month_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("rows", "totals", "projection", "start", "end", "forecast", "limits")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    totals: UsageStats
    projection: Projection
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    forecast: Forecast
    limits: _containers.RepeatedCompositeFieldContainer[_common_pb2.LimitStatus]
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., totals: _Optional[_Union[UsageStats, _Mapping]] = ..., projection: _Optional[_Union[Projection, _Mapping]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., forecast: _Optional[_Union[Forecast, _Mapping]] = ..., limits: _Optional[_Iterable[_Union[_common_pb2.LimitStatus, _Mapping]]] = ...) -> None: ...

class Forecast(_message.Message):
    __slots__ = ("basis_start", "basis_end", "basis_cost_nanos", "basis_calls", "basis_tokens", "horizon_end", "projected_cost_nanos", "projected_calls", "projected_tokens")
    BASIS_START_FIELD_NUMBER: _ClassVar[int]
    BASIS_END_FIELD_NUMBER: _ClassVar[int]
    BASIS_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    BASIS_CALLS_FIELD_NUMBER: _ClassVar[int]
    BASIS_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_END_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_CALLS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    basis_start: _timestamp_pb2.Timestamp
    basis_end: _timestamp_pb2.Timestamp
    basis_cost_nanos: int
    basis_calls: int
    basis_tokens: int
    horizon_end: _timestamp_pb2.Timestamp
    projected_cost_nanos: int
    projected_calls: int
    projected_tokens: int
    def __init__(self, basis_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., basis_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., basis_cost_nanos: _Optional[int] = ..., basis_calls: _Optional[int] = ..., basis_tokens: _Optional[int] = ..., horizon_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., projected_cost_nanos: _Optional[int] = ..., projected_calls: _Optional[int] = ..., projected_tokens: _Optional[int] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("start", "end", "filter", "page_size", "page_token", "min_cost_nanos", "min_latency", "min_total_tokens", "min_cached_read_tokens", "order_by")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    MIN_LATENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MIN_CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    filter: UsageFilter
    page_size: int
    page_token: str
    min_cost_nanos: int
    min_latency: _duration_pb2.Duration
    min_total_tokens: int
    min_cached_read_tokens: int
    order_by: CallOrder
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filter: _Optional[_Union[UsageFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_cost_nanos: _Optional[int] = ..., min_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_total_tokens: _Optional[int] = ..., min_cached_read_tokens: _Optional[int] = ..., order_by: _Optional[_Union[CallOrder, str]] = ...) -> None: ...

class CallRecord(_message.Message):
    __slots__ = ("call_id", "subject", "provider", "model", "operation", "labels", "usage", "latency", "time_to_first_token", "retry_count", "outcome", "error_code", "error_message", "occurred_at", "recorded_at", "cost_nanos", "cost_source", "price_id", "reservation_id", "api_key_id", "metadata", "cost_breakdown", "service_tier")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    COST_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    COST_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    subject: str
    provider: str
    model: str
    operation: str
    labels: _containers.ScalarMap[str, str]
    usage: _common_pb2.Usage
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    retry_count: int
    outcome: _common_pb2.Outcome
    error_code: str
    error_message: str
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    cost_nanos: int
    cost_source: _common_pb2.CostSource
    price_id: str
    reservation_id: str
    api_key_id: str
    metadata: _containers.ScalarMap[str, str]
    cost_breakdown: _common_pb2.CostBreakdown
    service_tier: str
    def __init__(self, call_id: _Optional[str] = ..., subject: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., operation: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_count: _Optional[int] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cost_nanos: _Optional[int] = ..., cost_source: _Optional[_Union[_common_pb2.CostSource, str]] = ..., price_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., cost_breakdown: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., service_tier: _Optional[str] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CallRecord]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[CallRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamAlertsRequest(_message.Message):
    __slots__ = ("since_id", "min_severity", "kinds", "subject_prefix", "heartbeat_interval")
    SINCE_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    since_id: int
    min_severity: _common_pb2.Severity
    kinds: _containers.RepeatedScalarFieldContainer[_common_pb2.AlertKind]
    subject_prefix: str
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, since_id: _Optional[int] = ..., min_severity: _Optional[_Union[_common_pb2.Severity, str]] = ..., kinds: _Optional[_Iterable[_Union[_common_pb2.AlertKind, str]]] = ..., subject_prefix: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "rule_id", "kind", "severity", "subject", "provider", "model", "limit_id", "metric", "observed", "threshold", "window_start", "window_end", "message", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    rule_id: str
    kind: _common_pb2.AlertKind
    severity: _common_pb2.Severity
    subject: str
    provider: str
    model: str
    limit_id: str
    metric: _common_pb2.Metric
    observed: float
    threshold: float
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    message: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., rule_id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.AlertKind, str]] = ..., severity: _Optional[_Union[_common_pb2.Severity, str]] = ..., subject: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., limit_id: _Optional[str] = ..., metric: _Optional[_Union[_common_pb2.Metric, str]] = ..., observed: _Optional[float] = ..., threshold: _Optional[float] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server_time", "last_id", "resume_id")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_ID_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    last_id: int
    resume_id: int
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_id: _Optional[int] = ..., resume_id: _Optional[int] = ...) -> None: ...

class StreamAlertsResponse(_message.Message):
    __slots__ = ("alert", "heartbeat")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    alert: Alert
    heartbeat: Heartbeat
    def __init__(self, alert: _Optional[_Union[Alert, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class GetRecommendationsRequest(_message.Message):
    __slots__ = ("start", "end", "filter", "candidate_models", "max_alternatives", "target_cache_hit_rate_bp", "max_hot_spots", "min_calls")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    MAX_ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    TARGET_CACHE_HIT_RATE_BP_FIELD_NUMBER: _ClassVar[int]
    MAX_HOT_SPOTS_FIELD_NUMBER: _ClassVar[int]
    MIN_CALLS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    filter: UsageFilter
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    max_alternatives: int
    target_cache_hit_rate_bp: int
    max_hot_spots: int
    min_calls: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filter: _Optional[_Union[UsageFilter, _Mapping]] = ..., candidate_models: _Optional[_Iterable[str]] = ..., max_alternatives: _Optional[int] = ..., target_cache_hit_rate_bp: _Optional[int] = ..., max_hot_spots: _Optional[int] = ..., min_calls: _Optional[int] = ...) -> None: ...

class ModelAlternative(_message.Message):
    __slots__ = ("provider", "model", "price_id", "cost_nanos", "cost_breakdown", "saving_nanos")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    COST_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    SAVING_NANOS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    price_id: str
    cost_nanos: int
    cost_breakdown: _common_pb2.CostBreakdown
    saving_nanos: int
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., price_id: _Optional[str] = ..., cost_nanos: _Optional[int] = ..., cost_breakdown: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., saving_nanos: _Optional[int] = ...) -> None: ...

class ModelRecommendation(_message.Message):
    __slots__ = ("provider", "model", "calls", "input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "requests", "units", "recorded_cost_nanos", "catalog_cost_nanos", "price_id", "alternatives", "cache_hit_rate", "cache_savings_nanos", "target_cached_tokens_added", "target_cache_saving_nanos", "candidate_source", "equivalence_groups")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    PRICE_ID_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVINGS_NANOS_FIELD_NUMBER: _ClassVar[int]
    TARGET_CACHED_TOKENS_ADDED_FIELD_NUMBER: _ClassVar[int]
    TARGET_CACHE_SAVING_NANOS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    EQUIVALENCE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    requests: int
    units: int
    recorded_cost_nanos: int
    catalog_cost_nanos: int
    price_id: str
    alternatives: _containers.RepeatedCompositeFieldContainer[ModelAlternative]
    cache_hit_rate: float
    cache_savings_nanos: int
    target_cached_tokens_added: int
    target_cache_saving_nanos: int
    candidate_source: CandidateSource
    equivalence_groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., calls: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., requests: _Optional[int] = ..., units: _Optional[int] = ..., recorded_cost_nanos: _Optional[int] = ..., catalog_cost_nanos: _Optional[int] = ..., price_id: _Optional[str] = ..., alternatives: _Optional[_Iterable[_Union[ModelAlternative, _Mapping]]] = ..., cache_hit_rate: _Optional[float] = ..., cache_savings_nanos: _Optional[int] = ..., target_cached_tokens_added: _Optional[int] = ..., target_cache_saving_nanos: _Optional[int] = ..., candidate_source: _Optional[_Union[CandidateSource, str]] = ..., equivalence_groups: _Optional[_Iterable[str]] = ...) -> None: ...

class CacheSummary(_message.Message):
    __slots__ = ("input_tokens", "cached_read_tokens", "cache_write_tokens", "cache_hit_rate", "cache_savings_nanos", "target_cache_hit_rate_bp", "target_cache_saving_nanos")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVINGS_NANOS_FIELD_NUMBER: _ClassVar[int]
    TARGET_CACHE_HIT_RATE_BP_FIELD_NUMBER: _ClassVar[int]
    TARGET_CACHE_SAVING_NANOS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    cache_hit_rate: float
    cache_savings_nanos: int
    target_cache_hit_rate_bp: int
    target_cache_saving_nanos: int
    def __init__(self, input_tokens: _Optional[int] = ..., cached_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ..., cache_savings_nanos: _Optional[int] = ..., target_cache_hit_rate_bp: _Optional[int] = ..., target_cache_saving_nanos: _Optional[int] = ...) -> None: ...

class HotSpot(_message.Message):
    __slots__ = ("provider", "model", "calls", "errors", "error_rate", "latency_p95", "cost_nanos")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    calls: int
    errors: int
    error_rate: float
    latency_p95: _duration_pb2.Duration
    cost_nanos: int
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cost_nanos: _Optional[int] = ...) -> None: ...

class GetRecommendationsResponse(_message.Message):
    __slots__ = ("start", "end", "priced_at", "models", "cache", "error_rate_models", "error_rate_providers", "latency_models", "latency_providers", "unpriced_candidates")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PRICED_AT_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MODELS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    priced_at: _timestamp_pb2.Timestamp
    models: _containers.RepeatedCompositeFieldContainer[ModelRecommendation]
    cache: CacheSummary
    error_rate_models: _containers.RepeatedCompositeFieldContainer[HotSpot]
    error_rate_providers: _containers.RepeatedCompositeFieldContainer[HotSpot]
    latency_models: _containers.RepeatedCompositeFieldContainer[HotSpot]
    latency_providers: _containers.RepeatedCompositeFieldContainer[HotSpot]
    unpriced_candidates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelRecommendation, _Mapping]]] = ..., cache: _Optional[_Union[CacheSummary, _Mapping]] = ..., error_rate_models: _Optional[_Iterable[_Union[HotSpot, _Mapping]]] = ..., error_rate_providers: _Optional[_Iterable[_Union[HotSpot, _Mapping]]] = ..., latency_models: _Optional[_Iterable[_Union[HotSpot, _Mapping]]] = ..., latency_providers: _Optional[_Iterable[_Union[HotSpot, _Mapping]]] = ..., unpriced_candidates: _Optional[_Iterable[str]] = ...) -> None: ...
