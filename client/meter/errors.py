"""Exceptions raised by the Meter client. Every one is a `MeterError`."""

from __future__ import annotations

import grpc

from meter.v1 import common_pb2


class MeterError(Exception):
    """A call to Meter failed. `code` is the gRPC status code when the failure came from Meter."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class MeterUnavailable(MeterError):
    """Meter could not be reached or did not answer within the deadline (UNAVAILABLE, DEADLINE_EXCEEDED),
    and the client's failure policy did not let the call go ahead without it."""


class MeterAuthError(MeterError):
    """The API key is missing, malformed, unknown or revoked (UNAUTHENTICATED), or lacks the role the RPC
    needs (PERMISSION_DENIED). Never covered by a fail-open policy: it is a configuration bug."""


class QuotaExceeded(MeterError):
    """A DENY limit would be exceeded. Raised by `reserve()` and `guard()`; `check()` returns the answer.

    `limit` is the first denying limit's status (`meter.v1.LimitStatus`: id, metric, window, max, used,
    reserved, remaining, reset_at), `limits` every denying one, and `retry_after` the seconds until the
    denying windows free enough room for the estimate (None when the estimate can never fit)."""

    def __init__(self, result) -> None:
        self.result = result
        self.limits: tuple[common_pb2.LimitStatus, ...] = result.denied_limits
        self.limit: common_pb2.LimitStatus | None = self.limits[0] if self.limits else None
        self.retry_after: float | None = result.retry_after
        names = ", ".join(s.limit_id for s in self.limits) or "unknown limit"
        wait = f"; retry after {self.retry_after:.3g} s" if self.retry_after is not None else ""
        super().__init__(f"quota exceeded: {names}{wait}")


_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_AUTH = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def from_rpc_error(err: grpc.RpcError) -> MeterError:
    """The client exception for a failed RPC."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    message = f"{code.name if code else 'UNKNOWN'}: {details}"
    if code in _UNAVAILABLE:
        return MeterUnavailable(message, code)
    if code in _AUTH:
        return MeterAuthError(message, code)
    return MeterError(message, code)
