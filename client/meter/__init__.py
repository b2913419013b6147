"""Python client for Meter: a pre-call check and a post-call record in three lines.

    meter = MeterClient("localhost:50051", api_key="mk_...")
    with meter.guard(subject="user:42", provider="openai", model="gpt-4.1", estimate_tokens=1200) as call:
        call.record_openai(openai_client.chat.completions.create(...))

Depends on grpcio and protobuf only. See docs/client.md.
"""

from meter._async import AsyncAlertStream, AsyncMeterClient
from meter._core import BatchResult, Settings, record_request
from meter._sync import AlertStream, MeterClient
from meter.errors import MeterAuthError, MeterError, MeterUnavailable, QuotaExceeded
from meter.guard import AsyncGuard, Call, Guard
from meter.policy import FailurePolicy
from meter.results import CheckResult, RecordResult
from meter.spool import FileSpool, MemorySpool
from meter.tls import TLS
from meter.usage_extract import anthropic_usage, detect_usage, gemini_usage, openai_usage

__all__ = [
    "AlertStream",
    "AsyncAlertStream",
    "AsyncGuard",
    "AsyncMeterClient",
    "BatchResult",
    "Call",
    "CheckResult",
    "FailurePolicy",
    "FileSpool",
    "Guard",
    "MemorySpool",
    "MeterAuthError",
    "MeterClient",
    "MeterError",
    "MeterUnavailable",
    "QuotaExceeded",
    "RecordResult",
    "Settings",
    "TLS",
    "anthropic_usage",
    "detect_usage",
    "gemini_usage",
    "openai_usage",
    "record_request",
]
