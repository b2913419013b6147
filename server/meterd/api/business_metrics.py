"""What Meter meters, as Prometheus series of this process: calls, tokens and cost by provider and
model, quota denials, reservations expired and outstanding, alert deliveries by channel kind and
outcome, plus build info. Labels are bounded: provider and model only (never tenant, subject or key
ids), and at most MAX_MODELS distinct (provider, model) pairs, the rest counted as "other".

An operator may opt in to per-tenant series (--metrics-tenant-labels N): separate meter_tenant_*
families labelled by tenant alone, so the provider/model series keep their shape and the tenant
series never multiply by the models; the tenant label takes at most N values, "other" included."""

from __future__ import annotations

import platform
import sys
import threading
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily

MAX_MODELS = 500
OTHER = ("other", "other")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class ModelLabels:
    """(provider, model) → itself while fewer than `cap` pairs were seen, else ("other", "other"):
    callers choose these strings, so they must not grow the series without bound."""

    def __init__(self, cap: int = MAX_MODELS) -> None:
        self.cap = cap
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, provider: str, model: str) -> tuple[str, str]:
        key = (provider.lower()[:64], model.lower()[:128])
        if key in self._seen:
            return key
        with self._lock:
            if len(self._seen) < self.cap:
                self._seen.add(key)
                return key
        return OTHER


class TenantLabels:
    """tenant id → itself for the first cap - 1 tenants seen, else "other": the label never takes
    more than `cap` values, the folded value included."""

    def __init__(self, cap: int) -> None:
        if cap < 2:
            raise ValueError('a tenant label cap is at least 2 (one tenant and "other")')
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, tenant_id: str) -> str:
        if tenant_id in self._seen:
            return tenant_id
        with self._lock:
            if len(self._seen) < self.cap - 1 and tenant_id != "other":
                self._seen.add(tenant_id)
                return tenant_id
        return "other"


class TenantSeries:
    """The opt-in per-tenant families (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry, cap: int) -> None:
        self.labels = TenantLabels(cap)
        self.calls = Counter("meter_tenant_calls_recorded_total", "Calls recorded, by tenant (capped) and outcome.",
                             ("tenant", "outcome"), registry=registry)  # fmt: skip
        self.tokens = Counter("meter_tenant_tokens_recorded_total", "Tokens recorded, by tenant (capped) and kind.",
                              ("tenant", "kind"), registry=registry)  # fmt: skip
        self.cost = Counter("meter_tenant_cost_recorded_usd_total", "Cost recorded in US dollars, by tenant (capped).",
                            ("tenant",), registry=registry)  # fmt: skip
        self.denials = Counter("meter_tenant_quota_denials_total", "CheckQuota denials, by tenant (capped).",
                               ("tenant",), registry=registry)  # fmt: skip


class BusinessMetrics:
    def __init__(self, registry: CollectorRegistry, *, cap: int = MAX_MODELS, tenant_cap: int = 0) -> None:
        self.labels = ModelLabels(cap)
        self.tenants = TenantSeries(registry, tenant_cap) if tenant_cap else None
        pm = ("provider", "model")
        self.calls = Counter("meter_calls_recorded_total", "Calls recorded (duplicates excluded), by outcome.",
                             (*pm, "outcome"), registry=registry)  # fmt: skip
        self.tokens = Counter("meter_tokens_recorded_total", "Tokens recorded, by kind (input is uncached input).",
                              (*pm, "kind"), registry=registry)  # fmt: skip
        self.cost = Counter("meter_cost_recorded_usd_total", "Cost of the calls recorded, in US dollars.", pm,
                            registry=registry)  # fmt: skip
        self.denials = Counter("meter_quota_denials_total", "CheckQuota answers that denied the call.", pm,
                               registry=registry)  # fmt: skip
        self.active = Gauge("meter_reservations_active",
                            "Reservations held and not yet settled, released or expired (whole database, "
                            "refreshed every 15 s).", registry=registry)  # fmt: skip
        self.deliveries = Counter("meter_alert_deliveries_total", "Alert delivery attempts, by channel and result.",
                                  ("channel", "result"), registry=registry)  # fmt: skip
        Info("meter_build", "Versions of this Meter server.", registry=registry).info(
            {
                "version": _version("meter"),
                "python_version": platform.python_version(),
                "grpcio_version": _version("grpcio"),
                "protobuf_version": _version("protobuf"),
                "implementation": sys.implementation.name,
            }
        )

    def recorded(self, tenant_id: str, call, result) -> None:
        """A call recorded (service.metering's on_recorded): domain CallInput and RecordResult."""
        if result.duplicate:
            return
        p, m = self.labels(call.dims.provider, call.dims.model)
        t = self.tenants
        tenant = t.labels(tenant_id) if t else ""
        outcome = "success" if call.success else "error"
        self.calls.labels(p, m, outcome).inc()
        if t:
            t.calls.labels(tenant, outcome).inc()
        for kind in ("input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens"):
            n = getattr(call, kind)
            if n:
                self.tokens.labels(p, m, kind.removesuffix("_tokens")).inc(n)
                if t:
                    t.tokens.labels(tenant, kind.removesuffix("_tokens")).inc(n)
        if result.cost_nanos:
            self.cost.labels(p, m).inc(result.cost_nanos / 1e9)
            if t:
                t.cost.labels(tenant).inc(result.cost_nanos / 1e9)

    def denied(self, tenant_id: str, dims, _at=None) -> None:
        self.denials.labels(*self.labels(dims.provider, dims.model)).inc()
        if self.tenants:
            self.tenants.denials.labels(self.tenants.labels(tenant_id)).inc()

    def delivery(self, channel: str, ok: bool) -> None:
        self.deliveries.labels(channel, "delivered" if ok else "failed").inc()


class ServiceCollector:
    """Read at scrape time from the services' own counts (any objects with these attributes)."""

    def __init__(self, quota, webhooks) -> None:
        self.quota, self.webhooks = quota, webhooks

    def collect(self):
        yield CounterMetricFamily(
            "meter_reservations_expired",
            "Reservations released by this process's sweeper because their TTL passed.",
            value=self.quota.expired_total,
        )
        family = CounterMetricFamily(
            "meter_alert_webhooks", "Legacy webhook_url delivery attempts, by result.", labels=["result"]
        )
        family.add_metric(["delivered"], self.webhooks.delivered_total)
        family.add_metric(["failed"], self.webhooks.failed_total)
        yield family
