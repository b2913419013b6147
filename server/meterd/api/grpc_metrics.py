"""RPC metrics under go-grpc-prometheus's names and labels, so its standard dashboards and alerts
work unchanged: grpc_server_started_total, grpc_server_handled_total (grpc-go code names such as
`Unauthenticated`), grpc_server_handling_seconds, grpc_server_msg_received_total and
grpc_server_msg_sent_total, each with grpc_type (unary, client_stream, server_stream, bidi_stream),
grpc_service and grpc_method. Every method is counted, health and reflection included: this
interceptor sits outside the authenticating one, so rejected calls count too.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from meterd.api.wrap_once import WrapOnceInterceptor

# grpc-go's codes.Code.String(): what go-grpc-prometheus puts in grpc_code.
GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
# go-grpc-prometheus's default buckets are prometheus.DefBuckets (5 ms .. 10 s); Meter's hot paths
# answer in about a millisecond, so finer ones below (dashboards use rates and quantiles, not edges).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LABELS = ("grpc_type", "grpc_service", "grpc_method")


class GrpcMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started_total", "Total number of RPCs started on the server.", LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", LABELS,
            registry=registry,
        )  # fmt: skip
        self.sent = Counter(
            "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", LABELS,
            registry=registry,
        )  # fmt: skip


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class _Method:
    """One method's children of the metric families, looked up once (the hot path only increments)."""

    def __init__(self, metrics: GrpcMetrics, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.handled_family = metrics.handled
        self.started = metrics.started.labels(*labels)
        self.seconds = metrics.seconds.labels(*labels)
        self.received = metrics.received.labels(*labels)
        self.sent = metrics.sent.labels(*labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def start(self) -> float:
        self.started.inc()
        return time.perf_counter()

    def done(self, started_at: float, code: grpc.StatusCode) -> None:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = self.handled_family.labels(*self.labels, GO_CODE_NAMES.get(code, "Unknown"))
        child.inc()
        self.seconds.observe(time.perf_counter() - started_at)


def _code_of(context, exc: BaseException | None) -> grpc.StatusCode:
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if code is None or (isinstance(code, int) and code == 0):
        return grpc.StatusCode.UNKNOWN if exc is not None else grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


class MetricsInterceptor(WrapOnceInterceptor):
    """Every method, health and reflection included."""

    def __init__(self, metrics: GrpcMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def wrap(self, method: str, h: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, name = _split(method)
        kinds = {
            "unary_unary": "unary",
            "unary_stream": "server_stream",
            "stream_unary": "client_stream",
            "stream_stream": "bidi_stream",
        }
        attr = next(a for a in kinds if getattr(h, a) is not None)
        m = _Method(self.metrics, (kinds[attr], service, name))
        inner = getattr(h, attr)

        async def counted(requests):
            async for r in requests:
                m.received.inc()
                yield r

        def request_in(arg):
            if attr.startswith("unary"):
                m.received.inc()
                return arg
            return counted(arg)

        if not attr.endswith("stream"):  # unary response

            async def unary_response(request, context):
                started = m.start()
                try:
                    response = await inner(request_in(request), context)
                except BaseException as exc:
                    m.done(started, _code_of(context, exc))
                    raise
                m.sent.inc()
                m.done(started, _code_of(context, None))
                return response

            handler = unary_response
        elif inspect.isasyncgenfunction(inner):

            async def stream_response(request, context):
                started = m.start()
                try:
                    async for response in inner(request_in(request), context):
                        m.sent.inc()
                        yield response
                except BaseException as exc:
                    m.done(started, _code_of(context, exc))
                    raise
                m.done(started, _code_of(context, None))

            handler = stream_response
        else:  # a streaming handler that writes with context.write (e.g. health's Watch): sent not counted

            async def written_response(request, context):
                started = m.start()
                try:
                    result = await inner(request_in(request), context)
                except BaseException as exc:
                    m.done(started, _code_of(context, exc))
                    raise
                m.done(started, _code_of(context, None))
                return result

            handler = written_response
        make = getattr(grpc, f"{attr}_rpc_method_handler")
        return make(handler, request_deserializer=h.request_deserializer, response_serializer=h.response_serializer)
