"""/metrics of `meter serve --workers N`: every worker's series, each with a `worker` label.

Per worker rather than prometheus_client's multiprocess mode: the pool, alert and service collectors
read live objects at scrape time (multiprocess mode supports only plain counters, gauges and
histograms written to files), and a per-worker series shows a worker that lags or restarts. Sum
over `worker` in queries (`sum without (worker) (rate(grpc_server_handled_total[1m]))`).

Each worker serves its own registry on a loopback port of its own; the parent's endpoint (the
configured --metrics-listen, HTTPS with --metrics-tls) fetches them all at each scrape.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from http.server import HTTPServer
from typing import Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from meterd.config import Config

log = logging.getLogger("meter.workers")

SCRAPE_TIMEOUT = 2.0  # seconds per worker; a worker that does not answer is left out of this scrape


class WorkerSource(Protocol):
    restart_total: int

    def metrics_ports(self) -> list[tuple[int, int, int]]: ...


class WorkerCollector(Collector):
    def __init__(self, source: WorkerSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        info = GaugeMetricFamily(
            "meter_worker", "1 per running worker process of this service", labels=["worker", "pid"]
        )
        for index, pid, port in self.source.metrics_ports():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT) as response:
                    text = response.read().decode()
            except OSError as exc:
                log.warning("worker %d's metrics did not answer: %s", index, exc)
                continue
            info.add_metric([str(index), str(pid)], 1)
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                merged.samples.extend(
                    Sample(s.name, {**s.labels, "worker": str(index)}, s.value, s.timestamp, s.exemplar)
                    for s in family.samples
                )
        yield from families.values()
        yield info
        restarts = CounterMetricFamily("meter_worker_restarts", "Worker processes restarted after they died")
        restarts.add_metric([], self.source.restart_total)
        yield restarts


def serve_worker_metrics(config: Config, source: WorkerSource) -> HTTPServer:
    """Start the merged /metrics endpoint on config.metrics_listen; returns the HTTP server."""
    host, _, port = config.metrics_listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(WorkerCollector(source))
    certfile, keyfile = (config.tls_cert, config.tls_key) if config.metrics_tls else (None, None)
    server, _thread = start_http_server(
        int(port), addr=host or "127.0.0.1", registry=registry, certfile=certfile, keyfile=keyfile
    )
    log.info("metrics of every worker on %s:%d/metrics", host or "127.0.0.1", server.server_port)
    return server
