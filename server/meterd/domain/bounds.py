"""The range of every request field, declared once and checked before anything runs.

A table keyed by proto message and field name (FIELDS["Usage"]["input_tokens"]), so the rules read like
the contract and the API layer applies them to any message generically (api/validation.py); this
module imports nothing of ours and nothing of protobuf. Every request field of meter.v1 must have an
entry (tests/unit/test_bounds.py walks the descriptors), and the proto comments state the same ranges.

Why these numbers (int64 holds 2^63 - 1 ~ 9.22e18; docs/operations.md, "Bounds", has the table):

* Per call, each token kind <= 1e8 (10x the largest context window, 10M), requests <= 1e6, units
  <= 1e6; catalog rates <= 1e12 nano-USD per million tokens ($1,000/Mtok; today's dearest is $600)
  and <= 1e9 ($1) per request or unit. So the catalog cost of one call is at most
  4 * 1e8 * 1e12 / 1e6 + 1e6 * 1e9 + 1e6 * 1e9 = 2.4e15, under MAX_CALL_COST_NANOS = 4e15 ($4M),
  which also bounds a client-supplied cost and a cost estimate.
* A group-committed batch holds at most 1,000 records (256 checks), so any batch delta of one counter
  or rollup row is at most 1,000 * 4e15 = 4e18 < 2^63.
* Rollup token columns are bigint: a day's row gets at most 86,400 s * 1e5 calls/s * 1e8 = 8.64e17
  even if every call is maximal at 1e5 calls/s (about the most one PostgreSQL ingests on these
  machines). Cost and latency sums are numeric there, GetUsage sums are numeric in SQL and saturate
  at 2^63 - 1 when encoded, so no range of GetUsage can fail.
* Counters are bigint and, for windows longer than a day, bounded by realism rather than by
  construction: a month at 1e5 calls/s averaging 1e4 tokens sums 2.7e16 tokens, 340x below 2^63;
  a cost counter overflows only after $9.2 billion in one window. Limit max <= 1e18.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INT64_MAX = 2**63 - 1

MAX_TOKENS = 10**8  # per call and token kind
MAX_REQUESTS = 10**6
MAX_UNITS = 10**6
MAX_CALL_COST_NANOS = 4 * 10**15  # $4,000,000 per call
MAX_NANOS_PER_MTOK = 10**12  # $1,000 per million tokens
MAX_NANOS_PER_REQUEST = 10**9  # $1 per request or unit
MAX_LIMIT = 10**18  # a limit's max, an alert amount
MAX_ALERT_COUNT = 10**12  # alert min_calls and count
MAX_RETRIES = 10_000
MAX_BATCH_CALLS = 1000  # RecordCalls items (service.metering.MAX_BATCH)
MAX_LOAD_PRICES = 10_000  # LoadPrices versions (service.prices.MAX_LOAD)

SECOND_NANOS = 10**9
DAY_S = 86_400
# Timestamps: the Unix epoch up to the year 3000. The proto and Python's datetime reach 9999 and
# PostgreSQL further, but every range computed from a timestamp (windows, buckets, projections, a
# 30-day default range) must stay inside datetime's year 9999: a year-9999 GetUsage.end failed so.
MIN_TIMESTAMP_S = 0  # 1970-01-01T00:00:00Z
MAX_TIMESTAMP_S = 32_503_680_000  # 3000-01-01T00:00:00Z, exclusive
# google.protobuf.Duration's own range: +-10,000 years.
PROTO_MAX_DURATION_S = 315_576_000_000

# Strings are counted in characters (code points); ids use the same bounds as the domain's checks.
ID = 128  # call_id, reservation_id, provider, model, operation, error_code, price ids
NAME = 64  # limit and alert rule ids, label keys
SUBJECT = 256  # subjects, prefixes, label values, key names
TEXT = 1024  # descriptions, notes, secrets
ERROR_MESSAGE = 4096  # accepted; stored cut to 1,024 (domain.calls.MAX_ERROR_MESSAGE)
URL = 2048
SERVICE_TIER = 64  # domain.calls.MAX_SERVICE_TIER
MATCH_RULE = 8192  # a catalog match rule as JSON (regexes and or-lists of ids)
PAGE_TOKEN = 1024
MAX_LABELS = 16
MAX_METADATA = 64  # entries; their total size is bounded to 4 KiB by domain.calls

MAX_VIOLATIONS = 20  # field violations listed in one error; the rest are counted
MAX_QUOTED = 48  # characters of an offending value or map key quoted back


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int
    unit: str = ""


@dataclass(frozen=True)
class Real:
    lo: float
    hi: float


@dataclass(frozen=True)
class Text:
    max_len: int
    required: bool = False  # must not be empty or blank


@dataclass(frozen=True)
class Span:
    """A google.protobuf.Duration field, bounds in nanoseconds."""

    lo_ns: int
    hi_ns: int


@dataclass(frozen=True)
class Items:
    """A repeated or map field: at most `max` entries (at least `min`), each checked with `each`
    (scalars), `key` and `value` (maps). per_item: the handler validates messages one by one (so a
    bad item fails alone, e.g. RecordCalls)."""

    max: int
    min: int = 0
    each: Int | Text | None = None
    key: Text | None = None
    value: Text | None = None
    per_item: bool = False


Bound = Int | Real | Text | Span | Items


def _s(seconds: float) -> int:
    return int(seconds * SECOND_NANOS)


TOKENS = Int(0, MAX_TOKENS, "tokens")
COST = Int(0, MAX_CALL_COST_NANOS, "nano-USD")
RATE_MTOK = Int(0, MAX_NANOS_PER_MTOK, "nano-USD per million tokens")
RATE_ONE = Int(0, MAX_NANOS_PER_REQUEST, "nano-USD")
LABELS = Items(MAX_LABELS, key=Text(NAME), value=Text(SUBJECT))
LATENCY = Span(0, _s(7 * DAY_S))
TTL = Span(_s(0.001), _s(30 * DAY_S))

_SELECTOR: dict[str, Bound] = {  # domain.limits.MAX_SELECTOR_FIELD
    "subject": Text(SUBJECT),
    "subject_prefix": Text(SUBJECT),
    "provider": Text(SUBJECT),
    "model": Text(SUBJECT),
    "operation": Text(SUBJECT),
    "labels": LABELS,
}

# Message name (without the "meter.v1." package) -> field -> bound. Bool fields need none, nested
# messages are walked, enums must be one of their declared values, and every Timestamp must lie in
# [MIN_TIMESTAMP_S, MAX_TIMESTAMP_S) with 0 <= nanos < 1e9 (an entry only narrows that).
FIELDS: dict[str, dict[str, Bound]] = {
    # common.proto
    "Window": {"duration": Span(0, _s(10 * 366 * DAY_S))},
    "Selector": _SELECTOR,
    "Usage": {
        "input_tokens": TOKENS,
        "output_tokens": TOKENS,
        "cached_read_tokens": TOKENS,
        "cache_write_tokens": TOKENS,
        "reasoning_tokens": TOKENS,
        "requests": Int(0, MAX_REQUESTS, "requests"),
        "units": Int(0, MAX_UNITS, "units"),
    },
    # meter.proto
    "Estimate": {
        "input_tokens": TOKENS,
        "max_output_tokens": TOKENS,
        "requests": Int(0, MAX_REQUESTS, "requests"),
        "units": Int(0, MAX_UNITS, "units"),
        "cost_nanos": COST,
        "cached_read_tokens": TOKENS,
    },
    "CheckQuotaRequest": {
        "subject": Text(SUBJECT, required=True),
        "provider": Text(ID, required=True),
        "model": Text(ID, required=True),
        "operation": Text(ID),
        "labels": LABELS,
        "reservation_ttl": TTL,
        "reservation_id": Text(ID),
        "service_tier": Text(SERVICE_TIER),
    },
    "ExtendReservationRequest": {"reservation_id": Text(ID), "ttl": TTL},
    "ReleaseReservationRequest": {"reservation_id": Text(ID)},
    "RecordCallRequest": {
        "call_id": Text(ID, required=True),
        "reservation_id": Text(ID),
        "subject": Text(SUBJECT, required=True),
        "provider": Text(ID, required=True),
        "model": Text(ID, required=True),
        "operation": Text(ID),
        "labels": LABELS,
        "latency": LATENCY,
        "time_to_first_token": LATENCY,
        "retry_count": Int(0, MAX_RETRIES, "retries"),
        "error_code": Text(ID),
        "error_message": Text(ERROR_MESSAGE),
        "cost_nanos": COST,
        "service_tier": Text(SERVICE_TIER),
        "metadata": Items(MAX_METADATA, key=Text(SUBJECT), value=Text(4096)),
    },
    "RecordCallsRequest": {"calls": Items(MAX_BATCH_CALLS, min=1, per_item=True)},
    "UsageFilter": {
        "subject": Text(SUBJECT),
        "subject_prefix": Text(SUBJECT),
        "provider": Text(ID),
        "model": Text(ID),
        "operation": Text(ID),
        "labels": LABELS,
        "error_code": Text(ID),
    },
    "GetUsageRequest": {
        "group_by": Items(8),
        "label_key": Text(NAME),
        "limit": Int(0, 1000, "rows"),
        "forecast_horizon": Span(_s(3600), _s(400 * DAY_S)),
        "forecast_basis": Span(_s(3600), _s(90 * DAY_S)),
    },
    "GetRecommendationsRequest": {
        "candidate_models": Items(64, each=Text(2 * ID + 1)),
        "max_alternatives": Int(0, 50, "models"),
        "target_cache_hit_rate_bp": Int(0, 10_000, "basis points"),
        "max_hot_spots": Int(0, 100, "rows"),
        "min_calls": Int(0, MAX_ALERT_COUNT, "calls"),
    },
    "ListCallsRequest": {
        "page_size": Int(0, 1000, "calls"),
        "page_token": Text(PAGE_TOKEN),
        "min_cost_nanos": COST,
        "min_latency": LATENCY,
        "min_total_tokens": Int(0, 4 * MAX_TOKENS, "tokens"),
        "min_cached_read_tokens": TOKENS,
    },
    "StreamAlertsRequest": {
        "since_id": Int(0, INT64_MAX, "alert id"),
        "kinds": Items(16),
        "subject_prefix": Text(SUBJECT),
        "heartbeat_interval": Span(_s(1), _s(300)),
    },
    # admin.proto
    "Limit": {
        "id": Text(NAME),
        "description": Text(TEXT),
        "max": Int(1, MAX_LIMIT),
        "alert_thresholds_percent": Items(16, each=Int(1, 1000, "percent")),
    },
    "GetLimitRequest": {"id": Text(NAME)},
    "DeleteLimitRequest": {"id": Text(NAME)},
    "Price": {
        "id": Text(ID),
        "provider": Text(ID),
        "model_pattern": Text(ID),
        "input_nanos_per_mtok": RATE_MTOK,
        "output_nanos_per_mtok": RATE_MTOK,
        "cached_read_nanos_per_mtok": RATE_MTOK,
        "cache_write_nanos_per_mtok": RATE_MTOK,
        "request_nanos": RATE_ONE,
        "unit_nanos": RATE_ONE,
        "note": Text(TEXT),
        # Read-only (set by the catalog import, ignored by SetPrice), bounded so a listed price can be
        # sent back as it is.
        "service_tier": Text(SERVICE_TIER),
        "match_rule": Text(MATCH_RULE),
        "tiers": Items(16),
        "unit_kind": Text(NAME),
        "unit_divisor": Int(0, MAX_NANOS_PER_REQUEST, "units"),
        "source": Text(SUBJECT),
    },
    "PriceTier": {"rate": Text(NAME), "start_tokens": Int(0, 10 * MAX_TOKENS, "tokens"), "nanos_per_mtok": RATE_MTOK},
    "ListPricesRequest": {"provider": Text(ID), "model": Text(ID)},
    "LoadPricesRequest": {"prices": Items(MAX_LOAD_PRICES)},
    "RepriceCallsRequest": {"provider": Text(ID), "model": Text(ID)},
    "AlertRule": {
        "id": Text(NAME),
        "thresholds_percent": Items(16, each=Int(1, 1000, "percent")),
        "limit_id": Text(NAME),
        "amount_nanos": Int(0, MAX_LIMIT, "nano-USD"),
        "error_rate": Real(0.0, 1.0),
        "min_calls": Int(0, MAX_ALERT_COUNT, "calls"),
        "latency": LATENCY,
        "count": Int(0, MAX_ALERT_COUNT),
        "cooldown": Span(0, _s(30 * DAY_S)),
        "webhook_url": Text(URL),
        "webhook_secret": Text(256),  # domain.alerts.MAX_SECRET
        "channels": Items(8),  # domain.channels.MAX_CHANNELS
        "message_template": Text(2000),  # domain.channels.MAX_TEMPLATE
        "webhook_target": Text(URL),  # output only, sent back to keep the stored webhook
    },
    "AlertChannel": {  # domain.channels checks the combinations per kind
        "url": Text(URL),
        "secret": Text(256),
        "email_to": Items(20, each=Text(254)),
        "email_from": Text(254),
        "smtp_host": Text(253),
        "smtp_port": Int(0, 65535, "port"),
        "smtp_username": Text(SUBJECT),
        "target": Text(URL),  # output only, bounded so a listed rule can be sent back
    },
    "DeleteAlertRuleRequest": {"id": Text(NAME)},
    "CreateApiKeyRequest": {
        "name": Text(SUBJECT),
        "roles": Items(8),
        "bind_cert_subject": Text(SUBJECT),  # domain.keys.MAX_BINDING (255) is the tighter rule
        "bind_san": Text(SUBJECT),
    },
    "RevokeApiKeyRequest": {"id": Text(NAME)},
    # domain.dimensions
    "SetLabelDimensionRequest": {
        "label_key": Text(NAME, required=True),
        "max_values_per_day": Int(0, 100_000, "values"),
    },
    "DeleteLabelDimensionRequest": {"label_key": Text(NAME, required=True)},
    "BackfillLabelRollupsRequest": {"label_key": Text(NAME)},
    # domain/equivalences.py checks the name's characters and the distinct members.
    "SetModelEquivalenceRequest": {
        "name": Text(NAME, required=True),
        "models": Items(32, min=2, each=Text(2 * ID + 1)),
    },
    "DeleteModelEquivalenceRequest": {"name": Text(NAME, required=True)},
}


def quote(text: str, limit: int = MAX_QUOTED) -> str:
    """A bounded, printable prefix of a caller's value, for error messages."""
    head = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else "?" for c in text[:limit])
    return head + ("..." if len(text) > limit else "")


def int_violation(b: Int, value: int) -> str | None:
    if b.lo <= value <= b.hi:
        return None
    unit = f" {b.unit}" if b.unit else ""
    return f"must be between {b.lo} and {b.hi}{unit}, got {value}"


def real_violation(b: Real, value: float) -> str | None:
    if math.isfinite(value) and b.lo <= value <= b.hi:
        return None
    return f"must be a finite number between {b.lo:g} and {b.hi:g}, got {value!r}"


def text_violation(b: Text, value: str) -> str | None:
    if b.required and not value.strip():
        return "required"
    if "\x00" in value:
        return "must not contain NUL (\\x00) characters"
    if len(value) > b.max_len:
        return f"at most {b.max_len} characters, got {len(value)}"
    return None


def _seconds(ns: int) -> str:
    return f"{ns / SECOND_NANOS:g} s"


def duration_violation(b: Span, seconds: int, nanos: int) -> str | None:
    if abs(seconds) > PROTO_MAX_DURATION_S or abs(nanos) >= SECOND_NANOS or seconds * nanos < 0:
        return "not a valid google.protobuf.Duration (|seconds| <= 315576000000, |nanos| < 1e9, same sign)"
    total = seconds * SECOND_NANOS + nanos
    if b.lo_ns <= total <= b.hi_ns:
        return None
    return f"must be between {_seconds(b.lo_ns)} and {_seconds(b.hi_ns)}, got {_seconds(total)}"


def timestamp_violation(seconds: int, nanos: int) -> str | None:
    if not 0 <= nanos < SECOND_NANOS:
        return f"nanos must be 0..999999999, got {nanos}"
    if not MIN_TIMESTAMP_S <= seconds < MAX_TIMESTAMP_S:
        return f"must be between 1970-01-01T00:00:00Z and 3000-01-01T00:00:00Z, got {seconds} s since the epoch"
    return None


def count_violation(b: Items, count: int) -> str | None:
    if count < b.min:
        return "must not be empty" if b.min == 1 else f"at least {b.min} entries, got {count}"
    if count > b.max:
        return f"at most {b.max} entries, got {count}"
    return None


def capped(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most MAX_VIOLATIONS entries, each bounded, plus one saying how many were left out."""
    # 21 entries of at most ~270 characters: under 6 KiB, and gRPC's default metadata limit is 8 KiB.
    out = [(quote(f, 100), quote(d, 160)) for f, d in violations[:MAX_VIOLATIONS]]
    if len(violations) > MAX_VIOLATIONS:
        out.append(("...", f"and {len(violations) - MAX_VIOLATIONS} more violations"))
    return out
