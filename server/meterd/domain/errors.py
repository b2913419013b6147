"""Errors the domain and storage layers raise; api/errors.py maps each to one gRPC status code."""

from __future__ import annotations

from meterd.domain.bounds import capped, quote

MAX_MESSAGE = 1024  # characters of any error message sent back (the details carry the full list)


class MeterError(Exception):
    """Base class; the message is meant for the developer calling the API."""

    def __str__(self) -> str:
        # Messages may quote what the caller sent: never echo more than a bounded prefix of it.
        return quote(super().__str__(), MAX_MESSAGE)


class InvalidArgument(MeterError):
    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = capped(violations)  # (field path, what is wrong with it), bounded
        super().__init__("; ".join(f"{field}: {why}" for field, why in self.violations))


class NotFound(MeterError):
    pass


class AlreadyExists(MeterError):
    pass


class FailedPrecondition(MeterError):
    pass


class Unauthenticated(MeterError):
    pass


class PermissionDenied(MeterError):
    pass


class Unavailable(MeterError):
    """The database cannot be reached or is overloaded; the caller should retry with backoff."""


class Internal(MeterError):
    """A server bug confined to one item of a batch (RecordCalls): that item alone answers INTERNAL,
    with a bounded message, and the request's other items keep their own results."""


class ResourceExhausted(MeterError):
    """A bounded resource of the server ran out for this caller (e.g. a slow stream's buffer, its
    tenant's share of the server); retry_after (seconds), when given, travels as google.rpc.RetryInfo."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def require(violations: list[tuple[str, str]]) -> None:
    """Raise InvalidArgument when any violation was collected."""
    if violations:
        raise InvalidArgument(violations)


# ---- what the store raises besides MeterErrors (no psycopg class crosses a port) -------------------


class RolledBack(Exception):
    """The database rolled the transaction back to resolve a conflict (deadlock, serialization
    failure): nothing of it was applied, so running it again is exact."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"transaction rolled back ({sqlstate})")
        self.sqlstate = sqlstate


class RejectedContent(Exception):
    """The database refused a request's values (overflow, a constraint, a value too large).

    Not a MeterError on purpose: a group-committed batch that fails with it is split until the
    culprit stands alone, and only the culprit gets `error` (see service/batching.py)."""

    def __init__(self, error: InvalidArgument) -> None:
        super().__init__(str(error))
        self.error = error


class StoreFailure(Exception):
    """Any other database error: a bug of ours (INTERNAL), never the caller's."""


def culprit_error(exc: Exception) -> Exception:
    """The error the one request that made a batch fail gets."""
    return exc.error if isinstance(exc, RejectedContent) else exc
