"""A recorded call: validation, normalisation and the content fingerprint used for idempotency."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any

from meterd.domain.errors import InvalidArgument

MAX_ID = 128  # call_id, reservation_id, provider, model, operation, error_code
MAX_SUBJECT = 256
MAX_SERVICE_TIER = 64
MAX_LABELS = 16
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 256  # longer values are rejected (issue 12): cut ones would merge distinct groups
MAX_ERROR_MESSAGE = 1024  # truncated
MAX_METADATA_BYTES = 4096  # rejected beyond this


@dataclasses.dataclass(frozen=True)
class Dimensions:
    subject: str
    provider: str  # lower-cased
    model: str
    operation: str
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True)
class CallInput:
    call_id: str
    reservation_id: str
    dims: Dimensions
    usage_given: bool  # False: a settling record charges the reserved estimate
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    latency_us: int | None
    ttft_us: int | None
    retry_count: int
    success: bool
    error_code: str
    error_message: str
    occurred_at: dt.datetime | None  # None: now (the database clock)
    client_cost_nanos: int | None
    metadata: dict[str, str]
    service_tier: str = ""  # the provider's service tier ("" standard), selects tier prices

    def fingerprint(self) -> bytes:
        """What makes two records of one call_id "the same content" (the server-side now excluded).

        Stored with the first record and compared on every retry, so its input must never change:
        every field, sorted, as JSON (tests/unit pins a digest). Built by hand because
        dataclasses.asdict (deep copies) cost more than the rest of the record's validation."""
        content = {f: getattr(self, f) for f in _CALL_FIELDS}
        d = self.dims
        content["dims"] = {"labels": d.labels, "model": d.model, "operation": d.operation, "provider": d.provider,
                           "subject": d.subject}  # fmt: skip
        content["occurred_at"] = self.occurred_at.isoformat() if self.occurred_at else None
        if self.service_tier:  # absent when empty, so digests of calls recorded before it existed hold
            content["service_tier"] = self.service_tier
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).digest()


_CALL_FIELDS = tuple(f.name for f in dataclasses.fields(CallInput) if f.name != "service_tier")


def nul_violations(**fields: str | dict[str, str]) -> list[tuple[str, str]]:
    """PostgreSQL text cannot hold NUL characters: refuse them up front, per field, rather than fail
    the whole group-committed batch at the database."""
    out = []
    for field, value in fields.items():
        text = "".join(value) + "".join(value.values()) if isinstance(value, dict) else value
        if "\x00" in text:
            out.append((field, "must not contain NUL (\\x00) characters"))
    return out


def service_tier_violations(service_tier: str) -> list[tuple[str, str]]:
    if len(service_tier) > MAX_SERVICE_TIER:
        return [("service_tier", f"at most {MAX_SERVICE_TIER} characters")]
    return nul_violations(service_tier=service_tier)


def validate_dimensions(
    subject: str, provider: str, model: str, operation: str, labels: dict[str, str]
) -> tuple[Dimensions, list[tuple[str, str]]]:
    violations: list[tuple[str, str]] = []
    for field, value, limit in (
        ("subject", subject, MAX_SUBJECT),
        ("provider", provider, MAX_ID),
        ("model", model, MAX_ID),
    ):
        if not value.strip():
            violations.append((field, "required"))
        elif len(value) > limit:
            violations.append((field, f"at most {limit} characters"))
    if len(operation) > MAX_ID:
        violations.append(("operation", f"at most {MAX_ID} characters"))
    if len(labels) > MAX_LABELS:
        violations.append(("labels", f"at most {MAX_LABELS} labels, got {len(labels)}"))
    clean: dict[str, str] = {}
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            violations.append((f"labels[{key[:MAX_LABEL_KEY]}]", f"label keys are 1-{MAX_LABEL_KEY} characters"))
        elif len(value) > MAX_LABEL_VALUE:
            violations.append((f"labels[{key}]", f"label values are at most {MAX_LABEL_VALUE} characters"))
        clean[key] = value
    violations += nul_violations(subject=subject, provider=provider, model=model, operation=operation, labels=labels)
    return Dimensions(subject, provider.strip().lower(), model, operation, clean), violations


def validate_call(
    *,
    call_id: str,
    dims: Dimensions,
    violations: list[tuple[str, str]],
    occurred_at: dt.datetime | None,
    now: dt.datetime,
    backfill_horizon: dt.timedelta,
    max_future_skew: dt.timedelta,
    metadata: dict[str, str],
    counts: dict[str, int],
    **rest,
) -> CallInput:
    """Check a record's fields; raises InvalidArgument listing every problem at once."""
    if not call_id:
        violations.append(("call_id", "required: a unique id per call, reused on retries (idempotency key)"))
    elif len(call_id) > MAX_ID:
        violations.append(("call_id", f"at most {MAX_ID} characters"))
    for field, value in counts.items():
        if value < 0:
            violations.append((f"usage.{field}", "must not be negative"))
    if rest.get("client_cost_nanos") is not None and rest["client_cost_nanos"] < 0:
        violations.append(("cost_nanos", "must not be negative"))
    for field in ("latency_us", "ttft_us"):
        if rest.get(field) is not None and rest[field] < 0:
            violations.append((field.replace("_us", ""), "must not be negative"))
    violations += service_tier_violations(rest.get("service_tier", ""))
    if rest.get("retry_count", 0) < 0:
        violations.append(("retry_count", "must not be negative"))
    if len(rest.get("error_code", "")) > MAX_ID:
        violations.append(("error_code", f"at most {MAX_ID} characters"))
    if occurred_at is not None:
        if occurred_at > now + max_future_skew:
            violations.append(
                ("occurred_at", f"{occurred_at.isoformat()} is in the future (server time {now.isoformat()})")
            )
        elif occurred_at < now - backfill_horizon:
            violations.append(
                (
                    "occurred_at",
                    f"older than the back-fill horizon of {backfill_horizon.days} days (METER_BACKFILL_HORIZON)",
                )
            )
    violations += nul_violations(
        call_id=call_id,
        reservation_id=rest.get("reservation_id", ""),
        error_code=rest.get("error_code", ""),
        error_message=rest.get("error_message", ""),
        metadata=metadata,
    )
    if sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) > MAX_METADATA_BYTES:
        violations.append(("metadata", f"at most {MAX_METADATA_BYTES} bytes of keys and values in total"))
    if violations:
        raise InvalidArgument(violations)
    rest["error_message"] = rest.get("error_message", "")[:MAX_ERROR_MESSAGE]
    fields: dict[str, Any] = {**counts, **rest}  # counts (int) and the rest (mixed types), by field name
    return CallInput(call_id=call_id, dims=dims, occurred_at=occurred_at, metadata=metadata, **fields)
