"""`with meter.guard(...) as call:` — reserve before an LLM call, record it after, never swallow the
caller's exception. The async twin is `async with ameter.guard(...)`; `meter.metered(...)` is the
decorator form."""

from __future__ import annotations

import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from meter.errors import MeterError
from meter.results import CheckResult, RecordResult
from meter.usage_extract import anthropic_usage, detect_usage, gemini_usage, openai_usage
from meter.v1 import common_pb2

log = logging.getLogger("meter.guard")
_WARNED: set[tuple[str, str]] = set()  # (extractor, response type) already logged as usage-unknown

_ESTIMATE_KEYS = (
    "estimate_tokens",
    "max_output_tokens",
    "cached_read_tokens",
    "units",
    "requests",
    "estimate_cost_nanos",
)


def error_code_of(exc: BaseException) -> str:
    """A short code for a failed call: the SDK's error code or HTTP status when it has one, else the
    exception's class name (e.g. "RateLimitError")."""
    for attr in ("code", "status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return f"{type(exc).__name__}:{value}"
    return type(exc).__name__


class Call:
    """The handle a guard yields: tell it what the call used; the guard records it on exit."""

    def __init__(self, call_id: str, labels: dict[str, str], metadata: dict[str, str]) -> None:
        self.call_id = call_id
        self.labels = labels
        self.metadata = metadata
        self.check: CheckResult | None = None  # the reservation's answer (degraded when fail-open)
        self.usage: common_pb2.Usage | None = None
        self.cost_nanos: int | None = None
        self.retry_count = 0
        self.result: RecordResult | None = None  # set after the block
        self.record_error: MeterError | None = None  # a record that failed after the block (logged)
        self.usage_unknown = ""  # why, when a response had no usage (recorded at the estimate)
        self.skipped = False
        self._started = time.perf_counter()
        self._first_token: float | None = None

    @property
    def reservation_id(self) -> str:
        return self.check.reservation_id if self.check else ""

    def record(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        requests: int | None = None,
        units: int = 0,
        cost_nanos: int | None = None,
    ) -> None:
        """Set the usage explicitly, in Meter's non-overlapping counters (input excludes cached)."""
        self.usage = common_pb2.Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_read_tokens=cached_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            requests=requests,
            units=units,
        )
        if cost_nanos is not None:
            self.cost_nanos = cost_nanos

    def record_usage(self, usage: common_pb2.Usage) -> None:
        self.usage = usage

    def record_openai(self, response: Any) -> None:
        self._extract(openai_usage, response)

    def record_anthropic(self, response: Any) -> None:
        self._extract(anthropic_usage, response)

    def record_gemini(self, response: Any) -> None:
        self._extract(gemini_usage, response)

    def record_response(self, response: Any) -> None:
        """Any of the three providers' responses, told apart by shape."""
        self._extract(detect_usage, response)

    def _extract(self, extractor: Callable[[Any], common_pb2.Usage], response: Any) -> None:
        """A response without usage (an OpenAI stream without stream_options={"include_usage": True})
        is still a successful, paid call: it is recorded as such with its usage unknown (the
        reservation's estimate is charged, `metadata["meter.usage"] = "unknown"`), the caller's code
        goes on, and the cause is logged once per kind of response."""
        try:
            self.usage = extractor(response)
            self.usage_unknown = ""
        except ValueError as error:
            self.usage = None
            self.usage_unknown = str(error)
            self.metadata = {**self.metadata, "meter.usage": "unknown"}
            key = (extractor.__name__, type(response).__name__)
            if key not in _WARNED:
                _WARNED.add(key)
                log.warning(
                    "Meter: usage unknown for call %s (%s); recorded with the reservation's estimate. "
                    "This is logged once per kind of response.", self.call_id, error,
                )  # fmt: skip

    def first_token(self) -> None:
        """Mark the first streamed token (recorded as time_to_first_token)."""
        if self._first_token is None:
            self._first_token = time.perf_counter()

    def skip(self) -> None:
        """The call will not happen: release the reservation and record nothing."""
        self.skipped = True

    def _record_fields(self, exc: BaseException | None) -> dict:
        ended = time.perf_counter()
        fields: dict[str, Any] = {
            "call_id": self.call_id,
            "reservation_id": self.reservation_id,
            "labels": self.labels,
            "metadata": self.metadata,
            "latency": ended - self._started,
            "time_to_first_token": None if self._first_token is None else self._first_token - self._started,
            "retry_count": self.retry_count,
            "cost_nanos": self.cost_nanos,
            "usage": self.usage,
        }
        if exc is not None:
            fields["error_code"] = error_code_of(exc)
            fields["error_message"] = str(exc) or type(exc).__name__
            if self.usage is None:
                # A failed call used nothing we know of; an unset usage would charge the estimate.
                fields["usage"] = common_pb2.Usage()
        return fields


class _GuardBase:
    def __init__(
        self,
        client,
        subject: str,
        provider: str,
        model: str,
        *,
        operation: str = "",
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        reserve: bool = True,
        ttl: float | None = None,
        call_id: str | None = None,
        **estimate,
    ) -> None:
        unknown = set(estimate) - set(_ESTIMATE_KEYS)
        if unknown:
            raise TypeError(f"unknown guard arguments: {', '.join(sorted(unknown))}")
        self.client = client
        self.dims = {"subject": subject, "provider": provider, "model": model, "operation": operation}
        self.reserve = reserve
        self.ttl = ttl
        self.estimate = estimate
        self.call = Call(call_id or str(uuid.uuid4()), dict(labels or {}), dict(metadata or {}))

    def _reserve_kwargs(self) -> dict:
        # The reservation id is the call id: a retried RESERVE gets the first answer, never a second hold.
        return {
            **self.dims,
            "labels": self.call.labels,
            "ttl": self.ttl,
            "reservation_id": self.call.call_id,
            **self.estimate,
        }

    def _restart_clock(self) -> None:
        self.call._started = time.perf_counter()


class Guard(_GuardBase):
    def __enter__(self) -> Call:
        if self.reserve:
            self.call.check = self.client.reserve(**self._reserve_kwargs())  # raises QuotaExceeded
        self._restart_clock()
        return self.call

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        call = self.call
        if call.skipped:
            if call.reservation_id:
                try:
                    self.client.release(call.reservation_id)
                except MeterError as error:  # the reservation expires by itself
                    log.warning("could not release reservation %s: %s", call.reservation_id, error)
            return False
        try:
            call.result = self.client.record(**self.dims, **call._record_fields(exc))
        except MeterError as error:
            call.record_error = error
            log.error("Meter record of call %s failed: %s", call.call_id, error)
        return False  # never swallow the caller's exception


class AsyncGuard(_GuardBase):
    async def __aenter__(self) -> Call:
        if self.reserve:
            self.call.check = await self.client.reserve(**self._reserve_kwargs())
        self._restart_clock()
        return self.call

    async def __aexit__(self, exc_type, exc, tb) -> Literal[False]:
        call = self.call
        if call.skipped:
            if call.reservation_id:
                try:
                    await self.client.release(call.reservation_id)
                except MeterError as error:
                    log.warning("could not release reservation %s: %s", call.reservation_id, error)
            return False
        try:
            call.result = await self.client.record(**self.dims, **call._record_fields(exc))
        except MeterError as error:
            call.record_error = error
            log.error("Meter record of call %s failed: %s", call.call_id, error)
        return False


_EXTRACTORS: dict[str, Callable[[Call, Any], None]] = {
    "openai": Call.record_openai,
    "anthropic": Call.record_anthropic,
    "gemini": Call.record_gemini,
    "auto": Call.record_response,
}


def metered(client, subject: str | Callable[..., str], provider: str, model: str, *, usage="auto", **guard_kwargs):
    """Decorator: run the function inside `client.guard(...)` and read the usage from its return value.

    subject: a string, or a function of the decorated function's arguments returning one.
    usage: "auto" (tell the provider by the response's shape), "openai", "anthropic", "gemini", None
      (record no usage: a reservation is then charged at its estimate), or a function
      `(return value) -> meter.v1.Usage`.
    """

    def extract(call: Call, value: Any) -> None:
        if usage is None:
            return
        if callable(usage):
            call.record_usage(usage(value))
            return
        try:
            _EXTRACTORS[usage](call, value)
        except ValueError as error:  # an unexpected return value must not fail the caller
            log.warning("metered: no usage in %s: %s", type(value).__name__, error)

    def decorate(fn):
        is_async = inspect.iscoroutinefunction(fn)
        if is_async != bool(getattr(client, "is_async", False)):
            kind = "an async function needs AsyncMeterClient" if is_async else "a sync function needs MeterClient"
            raise TypeError(f"metered: {kind}")

        def subject_of(args, kwargs) -> str:
            return subject(*args, **kwargs) if callable(subject) else subject

        if is_async:

            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                async with client.guard(subject_of(args, kwargs), provider, model, **guard_kwargs) as call:
                    value = await fn(*args, **kwargs)
                    extract(call, value)
                    return value

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with client.guard(subject_of(args, kwargs), provider, model, **guard_kwargs) as call:
                value = fn(*args, **kwargs)
                extract(call, value)
                return value

        return wrapper

    return decorate
