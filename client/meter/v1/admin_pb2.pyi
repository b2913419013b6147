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

class ChannelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_KIND_UNSPECIFIED: _ClassVar[ChannelKind]
    CHANNEL_KIND_WEBHOOK: _ClassVar[ChannelKind]
    CHANNEL_KIND_SLACK: _ClassVar[ChannelKind]
    CHANNEL_KIND_TEAMS: _ClassVar[ChannelKind]
    CHANNEL_KIND_DISCORD: _ClassVar[ChannelKind]
    CHANNEL_KIND_EMAIL: _ClassVar[ChannelKind]
    CHANNEL_KIND_PAGERDUTY: _ClassVar[ChannelKind]

class SmtpTls(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SMTP_TLS_UNSPECIFIED: _ClassVar[SmtpTls]
    SMTP_TLS_STARTTLS: _ClassVar[SmtpTls]
    SMTP_TLS_TLS: _ClassVar[SmtpTls]
    SMTP_TLS_NONE: _ClassVar[SmtpTls]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_CHECK: _ClassVar[Role]
    ROLE_RECORD: _ClassVar[Role]
    ROLE_READ: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
CHANNEL_KIND_UNSPECIFIED: ChannelKind
CHANNEL_KIND_WEBHOOK: ChannelKind
CHANNEL_KIND_SLACK: ChannelKind
CHANNEL_KIND_TEAMS: ChannelKind
CHANNEL_KIND_DISCORD: ChannelKind
CHANNEL_KIND_EMAIL: ChannelKind
CHANNEL_KIND_PAGERDUTY: ChannelKind
SMTP_TLS_UNSPECIFIED: SmtpTls
SMTP_TLS_STARTTLS: SmtpTls
SMTP_TLS_TLS: SmtpTls
SMTP_TLS_NONE: SmtpTls
ROLE_UNSPECIFIED: Role
ROLE_CHECK: Role
ROLE_RECORD: Role
ROLE_READ: Role
ROLE_ADMIN: Role

class ModelEquivalence(_message.Message):
    __slots__ = ("name", "models", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetModelEquivalenceRequest(_message.Message):
    __slots__ = ("name", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class SetModelEquivalenceResponse(_message.Message):
    __slots__ = ("equivalence", "created")
    EQUIVALENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    equivalence: ModelEquivalence
    created: bool
    def __init__(self, equivalence: _Optional[_Union[ModelEquivalence, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListModelEquivalencesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelEquivalencesResponse(_message.Message):
    __slots__ = ("equivalences",)
    EQUIVALENCES_FIELD_NUMBER: _ClassVar[int]
    equivalences: _containers.RepeatedCompositeFieldContainer[ModelEquivalence]
    def __init__(self, equivalences: _Optional[_Iterable[_Union[ModelEquivalence, _Mapping]]] = ...) -> None: ...

class DeleteModelEquivalenceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelEquivalenceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LabelDimension(_message.Message):
    __slots__ = ("label_key", "max_values_per_day", "create_time")
    LABEL_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    label_key: str
    max_values_per_day: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, label_key: _Optional[str] = ..., max_values_per_day: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetLabelDimensionRequest(_message.Message):
    __slots__ = ("label_key", "max_values_per_day")
    LABEL_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    label_key: str
    max_values_per_day: int
    def __init__(self, label_key: _Optional[str] = ..., max_values_per_day: _Optional[int] = ...) -> None: ...

class SetLabelDimensionResponse(_message.Message):
    __slots__ = ("dimension", "created")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    dimension: LabelDimension
    created: bool
    def __init__(self, dimension: _Optional[_Union[LabelDimension, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListLabelDimensionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLabelDimensionsResponse(_message.Message):
    __slots__ = ("dimensions",)
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    dimensions: _containers.RepeatedCompositeFieldContainer[LabelDimension]
    def __init__(self, dimensions: _Optional[_Iterable[_Union[LabelDimension, _Mapping]]] = ...) -> None: ...

class DeleteLabelDimensionRequest(_message.Message):
    __slots__ = ("label_key",)
    LABEL_KEY_FIELD_NUMBER: _ClassVar[int]
    label_key: str
    def __init__(self, label_key: _Optional[str] = ...) -> None: ...

class DeleteLabelDimensionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackfillLabelRollupsRequest(_message.Message):
    __slots__ = ("label_key", "error_codes", "start", "end")
    LABEL_KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODES_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    label_key: str
    error_codes: bool
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, label_key: _Optional[str] = ..., error_codes: _Optional[bool] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BackfillLabelRollupsResponse(_message.Message):
    __slots__ = ("start", "end", "days")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    days: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., days: _Optional[int] = ...) -> None: ...

class Limit(_message.Message):
    __slots__ = ("id", "description", "selector", "metric", "window", "max", "partition", "action", "alert_thresholds_percent", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ALERT_THRESHOLDS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    selector: _common_pb2.Selector
    metric: _common_pb2.Metric
    window: _common_pb2.Window
    max: int
    partition: _common_pb2.Partition
    action: _common_pb2.LimitAction
    alert_thresholds_percent: _containers.RepeatedScalarFieldContainer[int]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., selector: _Optional[_Union[_common_pb2.Selector, _Mapping]] = ..., metric: _Optional[_Union[_common_pb2.Metric, str]] = ..., window: _Optional[_Union[_common_pb2.Window, _Mapping]] = ..., max: _Optional[int] = ..., partition: _Optional[_Union[_common_pb2.Partition, str]] = ..., action: _Optional[_Union[_common_pb2.LimitAction, str]] = ..., alert_thresholds_percent: _Optional[_Iterable[int]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetLimitRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: Limit
    def __init__(self, limit: _Optional[_Union[Limit, _Mapping]] = ...) -> None: ...

class SetLimitResponse(_message.Message):
    __slots__ = ("limit", "created")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    limit: Limit
    created: bool
    def __init__(self, limit: _Optional[_Union[Limit, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetLimitRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetLimitResponse(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: Limit
    def __init__(self, limit: _Optional[_Union[Limit, _Mapping]] = ...) -> None: ...

class ListLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLimitsResponse(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ...) -> None: ...

class DeleteLimitRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Price(_message.Message):
    __slots__ = ("id", "provider", "model_pattern", "effective_from", "input_nanos_per_mtok", "output_nanos_per_mtok", "cached_read_nanos_per_mtok", "cache_write_nanos_per_mtok", "request_nanos", "unit_nanos", "note", "create_time", "service_tier", "match_rule", "tiers", "unit_kind", "unit_divisor", "source")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATTERN_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    INPUT_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHED_READ_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNIT_NANOS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    MATCH_RULE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    UNIT_KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_DIVISOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    model_pattern: str
    effective_from: _timestamp_pb2.Timestamp
    input_nanos_per_mtok: int
    output_nanos_per_mtok: int
    cached_read_nanos_per_mtok: int
    cache_write_nanos_per_mtok: int
    request_nanos: int
    unit_nanos: int
    note: str
    create_time: _timestamp_pb2.Timestamp
    service_tier: str
    match_rule: str
    tiers: _containers.RepeatedCompositeFieldContainer[PriceTier]
    unit_kind: str
    unit_divisor: int
    source: str
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., model_pattern: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_nanos_per_mtok: _Optional[int] = ..., output_nanos_per_mtok: _Optional[int] = ..., cached_read_nanos_per_mtok: _Optional[int] = ..., cache_write_nanos_per_mtok: _Optional[int] = ..., request_nanos: _Optional[int] = ..., unit_nanos: _Optional[int] = ..., note: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., service_tier: _Optional[str] = ..., match_rule: _Optional[str] = ..., tiers: _Optional[_Iterable[_Union[PriceTier, _Mapping]]] = ..., unit_kind: _Optional[str] = ..., unit_divisor: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class PriceTier(_message.Message):
    __slots__ = ("rate", "start_tokens", "nanos_per_mtok")
    RATE_FIELD_NUMBER: _ClassVar[int]
    START_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    rate: str
    start_tokens: int
    nanos_per_mtok: int
    def __init__(self, rate: _Optional[str] = ..., start_tokens: _Optional[int] = ..., nanos_per_mtok: _Optional[int] = ...) -> None: ...

class SetPriceRequest(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: Price
    def __init__(self, price: _Optional[_Union[Price, _Mapping]] = ...) -> None: ...

class SetPriceResponse(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: Price
    def __init__(self, price: _Optional[_Union[Price, _Mapping]] = ...) -> None: ...

class ListPricesRequest(_message.Message):
    __slots__ = ("provider", "model", "at")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPricesResponse(_message.Message):
    __slots__ = ("prices", "catalog_source", "catalog_version", "catalog_imported_at")
    PRICES_FIELD_NUMBER: _ClassVar[int]
    CATALOG_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CATALOG_IMPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    catalog_source: str
    catalog_version: str
    catalog_imported_at: _timestamp_pb2.Timestamp
    def __init__(self, prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ..., catalog_source: _Optional[str] = ..., catalog_version: _Optional[str] = ..., catalog_imported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoadPricesRequest(_message.Message):
    __slots__ = ("prices", "include_default_catalog")
    PRICES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEFAULT_CATALOG_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    include_default_catalog: bool
    def __init__(self, prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ..., include_default_catalog: _Optional[bool] = ...) -> None: ...

class LoadPricesResponse(_message.Message):
    __slots__ = ("added", "skipped")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    added: int
    skipped: int
    def __init__(self, added: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class RepriceCallsRequest(_message.Message):
    __slots__ = ("start", "end", "provider", "model", "include_client_costs")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CLIENT_COSTS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    provider: str
    model: str
    include_client_costs: bool
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., include_client_costs: _Optional[bool] = ...) -> None: ...

class RepriceCallsResponse(_message.Message):
    __slots__ = ("calls_examined", "calls_changed", "cost_delta_nanos")
    CALLS_EXAMINED_FIELD_NUMBER: _ClassVar[int]
    CALLS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    COST_DELTA_NANOS_FIELD_NUMBER: _ClassVar[int]
    calls_examined: int
    calls_changed: int
    cost_delta_nanos: int
    def __init__(self, calls_examined: _Optional[int] = ..., calls_changed: _Optional[int] = ..., cost_delta_nanos: _Optional[int] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("id", "kind", "severity", "scope", "thresholds_percent", "limit_id", "amount_nanos", "window", "error_rate", "min_calls", "latency", "count", "cooldown", "webhook_url", "webhook_secret", "disabled", "create_time", "update_time", "channels", "message_template", "webhook_target", "webhook_secret_set")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_CALLS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_TARGET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: _common_pb2.AlertKind
    severity: _common_pb2.Severity
    scope: _common_pb2.Selector
    thresholds_percent: _containers.RepeatedScalarFieldContainer[int]
    limit_id: str
    amount_nanos: int
    window: _common_pb2.Window
    error_rate: float
    min_calls: int
    latency: _duration_pb2.Duration
    count: int
    cooldown: _duration_pb2.Duration
    webhook_url: str
    webhook_secret: str
    disabled: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    channels: _containers.RepeatedCompositeFieldContainer[AlertChannel]
    message_template: str
    webhook_target: str
    webhook_secret_set: bool
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.AlertKind, str]] = ..., severity: _Optional[_Union[_common_pb2.Severity, str]] = ..., scope: _Optional[_Union[_common_pb2.Selector, _Mapping]] = ..., thresholds_percent: _Optional[_Iterable[int]] = ..., limit_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., window: _Optional[_Union[_common_pb2.Window, _Mapping]] = ..., error_rate: _Optional[float] = ..., min_calls: _Optional[int] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., count: _Optional[int] = ..., cooldown: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., webhook_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ..., disabled: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channels: _Optional[_Iterable[_Union[AlertChannel, _Mapping]]] = ..., message_template: _Optional[str] = ..., webhook_target: _Optional[str] = ..., webhook_secret_set: _Optional[bool] = ...) -> None: ...

class AlertChannel(_message.Message):
    __slots__ = ("kind", "url", "secret", "email_to", "email_from", "smtp_host", "smtp_port", "smtp_tls", "smtp_username", "target", "secret_set")
    KIND_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EMAIL_TO_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    SMTP_HOST_FIELD_NUMBER: _ClassVar[int]
    SMTP_PORT_FIELD_NUMBER: _ClassVar[int]
    SMTP_TLS_FIELD_NUMBER: _ClassVar[int]
    SMTP_USERNAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    kind: ChannelKind
    url: str
    secret: str
    email_to: _containers.RepeatedScalarFieldContainer[str]
    email_from: str
    smtp_host: str
    smtp_port: int
    smtp_tls: SmtpTls
    smtp_username: str
    target: str
    secret_set: bool
    def __init__(self, kind: _Optional[_Union[ChannelKind, str]] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ..., email_to: _Optional[_Iterable[str]] = ..., email_from: _Optional[str] = ..., smtp_host: _Optional[str] = ..., smtp_port: _Optional[int] = ..., smtp_tls: _Optional[_Union[SmtpTls, str]] = ..., smtp_username: _Optional[str] = ..., target: _Optional[str] = ..., secret_set: _Optional[bool] = ...) -> None: ...

class SetAlertRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ...) -> None: ...

class SetAlertRuleResponse(_message.Message):
    __slots__ = ("rule", "created")
    RULE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    created: bool
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListAlertRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAlertRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ...) -> None: ...

class DeleteAlertRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteAlertRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "name", "roles", "create_time", "revoke_time", "expire_time", "last_use_time", "bound_cert_subject", "bound_san")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    BOUND_CERT_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BOUND_SAN_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    create_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    bound_cert_subject: str
    bound_san: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bound_cert_subject: _Optional[str] = ..., bound_san: _Optional[str] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("name", "roles", "expire_time", "bind_cert_subject", "bind_san")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    BIND_CERT_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BIND_SAN_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    expire_time: _timestamp_pb2.Timestamp
    bind_cert_subject: str
    bind_san: str
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bind_cert_subject: _Optional[str] = ..., bind_san: _Optional[str] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    secret: str
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("include_revoked",)
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    include_revoked: bool
    def __init__(self, include_revoked: _Optional[bool] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...
