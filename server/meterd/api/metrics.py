"""Prometheus metrics over HTTP on their own port: RPCs under go-grpc-prometheus's names
(api/grpc_metrics.py), business figures by provider and model (api/business_metrics.py), process
and Python runtime, database pool gauges and the alert engine's figures. No tenant or subject becomes a label (unbounded cardinality),
unless an operator opts in to per-tenant series with a cap (api/business_metrics.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from meterd.api.business_metrics import BusinessMetrics
from meterd.api.grpc_metrics import GrpcMetrics


class PoolCollector:
    """The database pool's gauges, read at scrape time through `stats` (store.db.Database.pool_stats)."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self.stats = stats

    def collect(self):
        stats = self.stats()
        for key, help_text in (
            ("pool_size", "Connections open (busy or idle)."),
            ("pool_available", "Idle connections."),
            ("requests_waiting", "Requests waiting for a connection."),
        ):
            yield GaugeMetricFamily(f"meter_db_{key}", help_text, value=stats.get(key, 0))


class AlertCollector:
    """Read at scrape time from the process's alert hub and evaluator (any objects with the
    attributes used below)."""

    def __init__(self, hub, evaluator) -> None:
        self.hub, self.evaluator = hub, evaluator

    def collect(self):
        yield GaugeMetricFamily("meter_alert_streams", "Open StreamAlerts streams.", value=self.hub.subscribers)
        yield CounterMetricFamily("meter_alerts_read", "Alerts read by this process's hub.", value=self.hub.read_total)
        yield CounterMetricFamily(
            "meter_alert_stream_overflows", "Streams ended for falling behind.", value=self.hub.overflows
        )
        yield GaugeMetricFamily(
            "meter_alert_evaluator_leader", "1 when this process runs the periodic alert rules.",
            value=1 if self.evaluator.leader else 0,
        )  # fmt: skip
        yield CounterMetricFamily(
            "meter_alert_evaluations", "Rounds of the periodic alert rules run here.", value=self.evaluator.rounds
        )


def start_metrics_server(
    listen: str,
    pool_stats: Callable[[], Mapping[str, int]],
    collectors=(),
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    tenant_cap: int = 0,
):
    """Serve /metrics on host:port (HTTPS with certfile and keyfile); returns the RPC metrics
    (api/grpc_metrics.py), the business metrics (api/business_metrics.py) and the HTTP server
    (.server_port, .shutdown())."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    metrics = GrpcMetrics(registry)
    business = BusinessMetrics(registry, tenant_cap=tenant_cap)
    # process_* (CPU, memory, file descriptors, start time), python_info and python_gc_*, as the
    # client library's default registry has them.
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(standard)
    registry.register(PoolCollector(pool_stats))
    for collector in collectors:
        registry.register(collector)
    server, _thread = start_http_server(
        int(port), addr=host or "127.0.0.1", registry=registry, certfile=certfile, keyfile=keyfile
    )
    return metrics, business, server
