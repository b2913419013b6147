"""Optional OpenTelemetry traces (pip install 'meter[otel]', --otel-endpoint): a server span per RPC,
the group-commit batch as a span under it, and the SQL statements as spans under the batch.

Imported only when tracing is on, so a server without it pays nothing, not even the import.

- RPC spans come from opentelemetry-instrumentation-grpc's grpc.aio server interceptor: it fits
  grpc.aio as it is (unary and streaming handlers, abort and set_code recorded as the span status)
  and extracts a client's `traceparent`, which becomes the span's parent. Health checks and
  reflection are left out: probes every few seconds would bury the calls that matter.
- SQL spans come from opentelemetry-instrumentation-psycopg, applied per connection of our pool (the
  pool's configure hook) rather than by patching psycopg for the whole process: a second server in
  the same process (tests) keeps its own provider. Statement text only, never parameters.
- A batch serves many requests, so its span cannot be a child of all of them: it is the child of its
  first (sampled) request, so a lone request nests as server → batch → SQL, and it links to every
  request it serves.
- SQL from the background loops (sweeper, evaluator, alert hub) has no parent span; the sampler
  drops such root client spans so they do not flood the collector with one trace per poll.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind

UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")


class _NoOrphanSql(Sampler):
    """ParentBased(ratio), except that a client span (SQL) without a parent is dropped."""

    def __init__(self, ratio: float) -> None:
        self._inner = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoOrphanSql{{{self._inner.get_description()}}}"


class BatchSpans:
    """service.batching's BatchTracer: what a request leaves with its queued item, and the span of
    the batch that serves it."""

    def __init__(self, tracer: trace.Tracer, name: str) -> None:
        self.tracer, self.name = tracer, name

    def capture(self) -> SpanContext | None:
        span_context = trace.get_current_span().get_span_context()
        return span_context if span_context.is_valid else None

    @contextlib.contextmanager
    def batch(self, size: int, requests: Sequence[Any]) -> Iterator[None]:
        served = [r for r in requests if isinstance(r, SpanContext)]
        parent = next((r for r in served if r.trace_flags.sampled), served[0] if served else None)
        # An explicit context: the worker's own (empty) one must not decide where the batch belongs.
        ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else otel_context.Context()
        with self.tracer.start_as_current_span(
            self.name,
            context=ctx,
            kind=SpanKind.INTERNAL,
            links=[Link(r) for r in served],
            attributes={"meter.batch.size": size},
        ):
            yield


class Tracing:
    """One server's tracer provider and the pieces app.py plugs in (no global provider is set)."""

    def __init__(
        self,
        *,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
        service_name: str = "meter",
        sample_ratio: float = 1.0,
    ) -> None:
        from importlib import metadata

        try:
            version = metadata.version("meter")
        except metadata.PackageNotFoundError:
            version = "unknown"
        self.provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service_name, SERVICE_VERSION: version}),
            sampler=_NoOrphanSql(sample_ratio),
        )
        if processor is None and exporter is not None:
            processor = BatchSpanProcessor(exporter)
        if processor is not None:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("meterd")

    @classmethod
    def otlp(cls, endpoint: str, *, service_name: str, sample_ratio: float) -> Tracing:
        """Spans exported over OTLP/gRPC in the background (BatchSpanProcessor: a slow collector
        delays nothing; when its queue is full spans are dropped, never the RPCs). An http://
        endpoint is plaintext, https:// is TLS; OTEL_EXPORTER_OTLP_* variables (headers,
        certificates) apply as the exporter documents them."""
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return cls(
            exporter=OTLPSpanExporter(endpoint=endpoint),
            service_name=service_name,
            sample_ratio=sample_ratio,
        )

    def server_interceptor(self):
        untraced = filters.negate(filters.any_of(*(filters.service_name(s) for s in UNTRACED_SERVICES)))
        return aio_server_interceptor(tracer_provider=self.provider, filter_=untraced)

    def batch_spans(self, name: str) -> BatchSpans:
        return BatchSpans(self.tracer, name)

    async def configure_connection(self, conn: Any) -> None:
        """The pool's configure hook: this connection's statements become spans of this provider."""
        PsycopgInstrumentor.instrument_connection(conn, tracer_provider=self.provider)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what is queued
