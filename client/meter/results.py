"""Typed results of the client calls (the protobuf messages stay reachable through `.response`)."""

from __future__ import annotations

from dataclasses import dataclass

from meter.v1 import common_pb2, meter_pb2


@dataclass(frozen=True)
class CheckResult:
    """The answer to `check()` or `reserve()`.

    `degraded` is True when Meter was unreachable and the failure policy let the call go ahead: there
    is then no `response`, no `reservation_id` and no limit status."""

    allowed: bool
    reservation_id: str
    retry_after: float | None
    limits: tuple[common_pb2.LimitStatus, ...]
    estimated_cost_nanos: int
    response: meter_pb2.CheckQuotaResponse | None
    degraded: bool = False

    @property
    def denied_limits(self) -> tuple[common_pb2.LimitStatus, ...]:
        return tuple(s for s in self.limits if s.denied)

    @classmethod
    def from_response(cls, response: meter_pb2.CheckQuotaResponse) -> CheckResult:
        retry = response.retry_after.ToTimedelta().total_seconds() if response.HasField("retry_after") else None
        return cls(
            allowed=response.allowed,
            reservation_id=response.reservation_id,
            retry_after=retry,
            limits=tuple(response.limits),
            estimated_cost_nanos=response.estimated_cost_nanos,
            response=response,
        )

    @classmethod
    def allowed_by_policy(cls) -> CheckResult:
        return cls(True, "", None, (), 0, None, degraded=True)


@dataclass(frozen=True)
class RecordResult:
    """The answer to `record()`.

    `spooled` is True when Meter could not be reached after the retries and the record waits in the
    local spool (it is delivered later with the same call_id); `response` is then None."""

    call_id: str
    duplicate: bool
    cost_nanos: int
    limits: tuple[common_pb2.LimitStatus, ...]
    response: meter_pb2.RecordCallResponse | None
    spooled: bool = False

    @classmethod
    def from_response(cls, response: meter_pb2.RecordCallResponse) -> RecordResult:
        return cls(response.call_id, response.duplicate, response.cost_nanos, tuple(response.limits), response)

    @classmethod
    def spooled_record(cls, call_id: str) -> RecordResult:
        return cls(call_id, False, 0, (), None, spooled=True)
