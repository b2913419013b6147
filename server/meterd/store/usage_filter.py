"""The SQL of a UsageFilter (GetUsage, ListCalls and the recommendations share it) and the call
columns a CallRow is read from. Only fixed fragments are spliced in; every value is a parameter."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from meterd.domain.usage import UsageFilter

# A raw call's value of Dimension.ERROR_CODE, as the label rollups store it.
ERROR_VALUE = "(CASE WHEN success THEN '' ELSE error_code END)"

CALL_COLUMNS = """call_id, occurred_at, recorded_at, api_key_id, reservation_id, subject, provider, model,
       operation, labels, metadata, input_tokens, output_tokens, cached_read_tokens, cache_write_tokens,
       reasoning_tokens, requests, units, latency_us, ttft_us, retry_count, success, error_code,
       error_message, cost_nanos, cost_source, price_id, cost_parts, service_tier"""


def filter_sql(f: UsageFilter, *, outcome: bool, labels: bool = True) -> str:
    """The filter's conditions, each starting with AND. Labels, outcome and error codes only exist
    on raw calls (and labels on reservations); the label rollups filter theirs by _label_sql."""
    sql = ""
    if f.subject:
        sql += " AND subject = %(f_subject)s"
    if f.subject_prefix:
        sql += " AND starts_with(subject, %(f_prefix)s)"  # no LIKE, so % and _ in the prefix are literal
    if f.provider:
        sql += " AND provider = %(f_provider)s"
    if f.model:
        sql += " AND model = %(f_model)s"
    if f.operation:
        sql += " AND operation = %(f_operation)s"
    if f.labels and labels:
        sql += " AND labels @> %(f_labels)s"
    if outcome and f.success is not None:
        sql += " AND success = %(f_success)s"
    if outcome and f.error_code:
        # = ERROR_VALUE for a non-empty code, written so the partial indexes of 0019 apply.
        sql += " AND NOT success AND error_code = %(f_error_code)s"
    return sql


def label_sql(f: UsageFilter) -> str:
    """Conditions on label rollup rows: the answering key (UsageQuery.dimension_key) and its value."""
    sql = " AND label_key = %(dim_key)s"
    if f.labels:
        sql += " AND label_value = %(f_dim_value)s"
    if f.error_code:
        sql += " AND label_value = %(f_error_code)s"
    return sql


def filter_params(f: UsageFilter) -> dict[str, Any]:
    return {
        "f_subject": f.subject,
        "f_prefix": f.subject_prefix,
        "f_provider": f.provider,
        "f_model": f.model,
        "f_operation": f.operation,
        "f_labels": Jsonb(f.labels),
        "f_success": f.success,
        "f_error_code": f.error_code,
        "f_dim_value": next(iter(f.labels.values()), None),
    }
