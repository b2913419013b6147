"""One interceptor for every Meter RPC: authenticate the API key, check the role, and turn domain
errors into gRPC statuses, so servicers only decode, call and encode."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from meterd.api.wrap_once import WrapOnceInterceptor, stream_behavior
from meterd.domain import errors
from meterd.domain.keys import Principal, check_format, hash_key

log = logging.getLogger(__name__)

# The role each RPC needs; "admin" may do everything. Methods not listed (health, reflection) are public.
METHOD_ROLES: dict[str, str] = {
    "/meter.v1.Meter/CheckQuota": "check",
    "/meter.v1.Meter/ExtendReservation": "check",
    "/meter.v1.Meter/ReleaseReservation": "check",
    "/meter.v1.Meter/RecordCall": "record",
    "/meter.v1.Meter/RecordCalls": "record",
    "/meter.v1.Meter/GetUsage": "read",
    "/meter.v1.Meter/ListCalls": "read",
    "/meter.v1.Meter/GetRecommendations": "read",
    "/meter.v1.Meter/StreamAlerts": "read",
}
ADMIN_SERVICE_PREFIX = "/meter.v1.MeterAdmin/"

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("meter_principal")

_CODES: dict[type[errors.MeterError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


def current_principal() -> Principal:
    return _principal.get()


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Run servicer code for a principal without an RPC (the server's own scheduled reads)."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


def required_role(method: str) -> str | None:
    if method.startswith(ADMIN_SERVICE_PREFIX):
        return "admin"
    return METHOD_ROLES.get(method)


def status_code(exc: errors.MeterError) -> grpc.StatusCode:
    return _CODES[type(exc)]


def _status_for(exc: errors.MeterError) -> grpc.Status:
    code = status_code(exc)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(exc))
    if isinstance(exc, errors.InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in exc.violations
                ]
            )
        )
        status.details.append(detail)
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after * 1e9))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    if isinstance(exc, errors.Unauthenticated | errors.PermissionDenied):
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=code.name, domain="meter.v1"))
        status.details.append(detail)
    return rpc_status.to_status(status)


class KeyCache:
    """Verified keys are trusted for `ttl` seconds, so the hot path does not query api_keys per RPC."""

    def __init__(self, lookup: Callable[[str], Awaitable[Principal | None]], ttl: float, max_entries: int = 10_000):
        self.lookup, self.ttl, self.max_entries = lookup, ttl, max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    async def principal(self, full_key: str) -> Principal:
        check_format(full_key)
        digest = hash_key(full_key)
        hit = self._entries.get(digest)
        now = time.monotonic()
        if hit and hit[1] > now:
            return hit[0]
        principal = await self.lookup(full_key)
        if principal is None:
            raise errors.Unauthenticated("unknown or revoked API key")
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[digest] = (principal, now + self.ttl)
        return principal

    def forget(self, key_id: str) -> None:
        self._entries = {h: e for h, e in self._entries.items() if e[0].key_id != key_id}


def _bearer(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise errors.Unauthenticated("authorization metadata must read 'Bearer mk_...'")
            return token.strip()
    raise errors.Unauthenticated("missing API key: send metadata 'authorization: Bearer mk_...'")


class MeterInterceptor(WrapOnceInterceptor):
    def __init__(self, keys: KeyCache, observe: Callable[[str, str, float], None] | None = None) -> None:
        super().__init__()
        self.keys = keys
        self.observe = observe  # (method, status code name, seconds), e.g. RpcMetrics.observe

    def applies(self, method: str) -> bool:
        return required_role(method) is not None

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        role = required_role(method)
        assert role is not None  # applies() admits only methods with a role
        return self._wrap(method, role, handler)

    def _wrap(self, method: str, role: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        keys, observe_hook = self.keys, self.observe

        async def authorize(context) -> None:
            principal = await keys.principal(_bearer(context.invocation_metadata()))
            if not principal.may(role):
                raise errors.PermissionDenied(
                    f"{method} needs the '{role}' role; this key has {', '.join(sorted(principal.roles))}"
                )
            _principal.set(principal)

        def fail_status(exc: Exception) -> grpc.Status:
            if isinstance(exc, errors.RejectedContent):  # the database refused the caller's values
                exc = exc.error
            if isinstance(exc, errors.MeterError):
                return _status_for(exc)
            log.exception("unexpected error in %s", method)
            return rpc_status.to_status(
                status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the server log")
            )

        def observe(started: float, code: grpc.StatusCode) -> None:
            if observe_hook:
                observe_hook(method, code.name, time.perf_counter() - started)

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                started = time.perf_counter()
                try:
                    await authorize(context)
                    response = await inner(request, context)
                except grpc.aio.AbortError:
                    observe(started, context.code() or grpc.StatusCode.UNKNOWN)
                    raise
                except Exception as exc:  # noqa: BLE001 - every error becomes a status
                    status = fail_status(exc)
                    observe(started, status.code)
                    await context.abort(status.code, status.details, status.trailing_metadata)
                observe(started, grpc.StatusCode.OK)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = stream_behavior(handler)

            async def unary_stream(request, context):
                started = time.perf_counter()
                try:
                    await authorize(context)
                    async for response in inner_stream(request, context):
                        yield response
                except grpc.aio.AbortError:
                    observe(started, context.code() or grpc.StatusCode.UNKNOWN)
                    raise
                except Exception as exc:  # noqa: BLE001
                    status = fail_status(exc)
                    observe(started, status.code)
                    await context.abort(status.code, status.details, status.trailing_metadata)
                observe(started, grpc.StatusCode.OK)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler
