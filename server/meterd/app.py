"""Builds and runs the grpc.aio server: servicers, interceptor, health, reflection, lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meterd.api.admin import AdminServicer
from meterd.api.business_metrics import BusinessMetrics, ServiceCollector
from meterd.api.digest_usage import DigestComposer
from meterd.api.fairness import AuthGuard, PeerInterceptor, TenantGate, TenantGateInterceptor
from meterd.api.grpc_metrics import MetricsInterceptor
from meterd.api.interceptor import KeyCache, MeterInterceptor
from meterd.api.key_policy import KeyPolicyInterceptor
from meterd.api.meter import MeterServicer
from meterd.api.metrics import AlertCollector, start_metrics_server
from meterd.api.registration import add_generic
from meterd.api.validation import BoundsInterceptor
from meterd.config import Config
from meterd.domain.clock import utc_now
from meterd.domain.errors import RejectedContent, RolledBack, StoreFailure, Unavailable
from meterd.service.admin import AlertRuleAdmin, KeyAdmin, LimitAdmin
from meterd.service.alert_hub import AlertHub
from meterd.service.alerts import AlertStreams, DenialCounter, Evaluator, WebhookSender
from meterd.service.channels import ChannelSender
from meterd.service.digests import DigestScheduler
from meterd.service.dimensions import DimensionAdmin
from meterd.service.equivalences import EquivalenceAdmin
from meterd.service.key_usage import LastUsed
from meterd.service.limit_cache import LimitCache
from meterd.service.limit_statuses import LimitStatusReader
from meterd.service.metering import MeteringService
from meterd.service.prices import PriceAdmin, PriceBook
from meterd.service.quota import QuotaService
from meterd.service.recommendations import RecommendationService
from meterd.service.reprice import Repricer
from meterd.service.usage import UsageService
from meterd.store.alerts import AlertStore
from meterd.store.call_search import CallSearchStore
from meterd.store.db import Database, HealthProbe
from meterd.store.deliveries import DeliveryStore
from meterd.store.equivalences import EquivalenceStore
from meterd.store.gauges import active_reservations
from meterd.store.keys import KeyStore
from meterd.store.label_rollups import LabelRollupStore
from meterd.store.limit_counters import LimitCounterStore
from meterd.store.limits import LimitStore
from meterd.store.migrate import MigrationError, migrate
from meterd.store.partitions import PartitionStore
from meterd.store.prices import PriceStore
from meterd.store.quota import QuotaStore
from meterd.store.records import RecordStore
from meterd.store.reprice import RepriceStore
from meterd.store.usage import UsageStore
from meterd.tls import is_loopback, reload_metrics_context, server_tls, transport_problem

if TYPE_CHECKING:
    from meterd.tracing import Tracing

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    meter_pb2.DESCRIPTOR.services_by_name["Meter"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["MeterAdmin"].full_name,
)


class ListenError(OSError):
    """An address the server cannot bind: the operator's to fix, so one line naming the setting."""

    def __init__(self, address: str, flag: str, env: str, why) -> None:
        super().__init__(f"cannot listen on {address} ({why}): choose another address with {flag} or {env}")


class MeterServer:
    """One server process. `start()` binds and serves at once (health NOT_SERVING) and turns SERVING
    when the database is migrated and reachable; `stop()` drains and closes everything."""

    def __init__(
        self,
        config: Config,
        database_url: str,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """clock: None uses the database's clock for quota windows (one clock for all replicas);
        tests inject one. tracing: None builds it from --otel-endpoint (off when empty); tests
        inject one with an in-memory exporter."""
        self.config = config
        self.database_url = database_url
        self._clock = clock
        if tracing is None and config.otel_endpoint:
            try:
                from meterd.tracing import Tracing  # only when on: no OpenTelemetry import otherwise
            except ImportError as exc:
                raise ValueError(
                    f"--otel-endpoint needs OpenTelemetry: pip install 'meter[otel]' ({exc.name} is missing)"
                ) from None
            tracing = Tracing.otlp(
                config.otel_endpoint, service_name=config.otel_service_name, sample_ratio=config.otel_sample_ratio
            )
        self.tracing = tracing
        self.db = Database(
            database_url,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.pool_timeout,
            max_waiting=config.pool_max_waiting,
            statement_timeout=config.statement_timeout,
            reconnect_timeout=config.reconnect_timeout,
            tcp_user_timeout=config.tcp_user_timeout,
            configure=tracing.configure_connection if tracing else None,
        )
        self.probe = HealthProbe(database_url, self.db.kwargs, timeout=max(1.0, config.pool_timeout))
        self.keys = KeyStore(self.db)
        self.auth_guard = AuthGuard(
            self.keys.authenticate, unknown_ttl=config.unknown_key_ttl, peer_failures=config.peer_auth_failures
        )
        self.tenant_gate = TenantGate(
            config.tenant_max_in_flight, config.tenant_max_wait, max_rate=config.tenant_max_rate
        )
        self.key_cache = KeyCache(self.auth_guard.lookup, ttl=config.key_cache_ttl)
        self.limit_store = LimitStore(self.db)
        self.limits = LimitCache(self.limit_store, database_url)
        price_store = PriceStore(self.db)
        self.prices = PriceBook(price_store)
        self.partitions = PartitionStore(self.db)
        quota_store = QuotaStore(self.db)
        self.alert_store = AlertStore(self.db)
        self.alert_hub = AlertHub(database_url, poll_interval=config.alert_poll_interval)
        self.denials = DenialCounter(self.alert_store, clock=clock)
        self.evaluator = Evaluator(self.alert_store, database_url, interval=config.alert_eval_interval, clock=clock)
        self.webhooks = WebhookSender(
            self.alert_store,
            timeout=config.webhook_timeout,
            max_attempts=config.webhook_max_attempts,
            retry_base=config.webhook_retry_base,
        )
        self.alert_hub.on_new.append(self.webhooks.wake)
        self.channels = ChannelSender(
            DeliveryStore(self.db),
            timeout=config.webhook_timeout,
            max_attempts=config.webhook_max_attempts,
            retry_base=config.webhook_retry_base,
            console_url=config.alert_console_url,
        )
        self.alert_hub.on_new.append(self.channels.wake)
        self.quota = QuotaService(
            quota_store,
            self.limits,
            self.prices,
            clock=clock,
            max_ttl=dt.timedelta(seconds=config.max_reservation_ttl),
            batch_workers=config.batch_workers,
            batch_timeout=config.batch_timeout,
            on_denied=self.denials.denied,
        )
        self.metering = MeteringService(
            RecordStore(self.db),
            self.limits,
            self.prices,
            clock=clock,
            batch_workers=config.batch_workers,
            batch_timeout=config.batch_timeout,
        )
        if tracing is not None:
            self.quota.batcher.tracer = tracing.batch_spans("meter.check_batch")
            self.metering.batcher.tracer = tracing.batch_spans("meter.record_batch")
        self.health = health.aio.HealthServicer()
        problem = transport_problem(config)
        if problem:
            raise ValueError(problem)
        self.tls = server_tls(config)  # None: plaintext
        self.last_used = LastUsed(self.keys, config.key_last_used_interval)
        self.metrics_http = None
        self.business: BusinessMetrics | None = None
        outer: list[grpc.aio.ServerInterceptor] = []
        if config.metrics_listen:
            tls_files = {"certfile": config.tls_cert, "keyfile": config.tls_key} if config.metrics_tls else {}
            try:
                rpc, self.business, self.metrics_http = start_metrics_server(
                    config.metrics_listen,
                    self.db.pool_stats,
                    [AlertCollector(self.alert_hub, self.evaluator), ServiceCollector(self.quota, self.webhooks)],
                    **tls_files,
                    tenant_cap=config.metrics_tenant_labels,
                )
            except (OSError, ValueError) as exc:
                raise ListenError(config.metrics_listen, "--metrics-listen", "METER_METRICS_LISTEN", exc) from None
            outer.append(MetricsInterceptor(rpc))  # outside authentication: rejected calls count too
            self._feed_business_metrics(self.business)
            if config.metrics_tls and self.tls:
                self.tls.on_reload.append(reload_metrics_context(self.metrics_http))
        if tracing is not None:  # inside metrics, outside authentication: rejected calls get a span too
            outer.append(tracing.server_interceptor())
        key_policy = KeyPolicyInterceptor(
            self.key_cache, recheck_interval=config.key_cache_ttl / 2, touch=self.last_used.touch
        )
        self.server = grpc.aio.server(
            # Order matters: metrics outermost (rejected calls count too), PeerInterceptor notes the caller's
            # host for the key look-up, MeterInterceptor authenticates, key_policy runs inside it (expiry,
            # certificate binding), then bounds: auth errors come first, and InvalidArgument raised inside
            # becomes a status there; the tenant gate last, so a request the bounds refuse never waits for a slot.
            interceptors=[
                *outer,
                PeerInterceptor(),
                MeterInterceptor(self.key_cache),
                key_policy,
                BoundsInterceptor(),
                TenantGateInterceptor(self.tenant_gate),
            ],
            options=[
                ("grpc.so_reuseport", 1 if config.reuse_port else 0),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ],
        )
        meter_servicer = MeterServicer(
            self.quota,
            self.metering,
            UsageService(
                UsageStore(self.db),
                CallSearchStore(self.db),
                LabelRollupStore(self.db),
                LimitStatusReader(self.limits.get, LimitCounterStore(self.db)),
            ),
            recommendations=RecommendationService(UsageStore(self.db), self.prices, EquivalenceStore(self.db)),
            clock=clock or utc_now,
            backfill_horizon=dt.timedelta(seconds=config.backfill_horizon),
            max_future_skew=dt.timedelta(seconds=config.max_future_skew),
            alerts=AlertStreams(self.alert_store, self.alert_hub, buffer=config.alert_stream_buffer),
            alert_heartbeat=config.alert_heartbeat,
        )
        add_generic(meter_pb2_grpc.add_MeterServicer_to_server, meter_servicer, self.server)
        # Digests read usage through GetUsage itself, so they say what `meter report` says.
        self.evaluator.digests = DigestScheduler(self.alert_store, DigestComposer(meter_servicer))
        add_generic(
            admin_pb2_grpc.add_MeterAdminServicer_to_server,
            AdminServicer(
                KeyAdmin(self.keys, forget=self.key_cache.forget, clock=utc_now),
                LimitAdmin(self.limit_store, invalidate=self.limits.invalidate),
                PriceAdmin(self.prices),
                Repricer(RepriceStore(self.db), price_store, self.limit_store),
                AlertRuleAdmin(self.alert_store),
                DimensionAdmin(LabelRollupStore(self.db)),
                EquivalenceAdmin(EquivalenceStore(self.db)),
            ),
            self.server,
        )
        add_generic(health_pb2_grpc.add_HealthServicer_to_server, self.health, self.server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = 0
        self._tasks: list[asyncio.Task] = []
        self.ready = asyncio.Event()

    async def start(self) -> int:
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            if self.tls:
                self.port = self.server.add_secure_port(self.config.listen, self.tls.credentials())
            else:
                self.port = self.server.add_insecure_port(self.config.listen)
        except RuntimeError:  # recent grpcio raises (its message points at GRPC_VERBOSITY) instead of returning 0
            self.port = 0
        if self.port == 0:
            raise ListenError(self.config.listen, "--listen", "METER_LISTEN", "address in use or not valid")
        await self.server.start()
        log.info("listening on %s (port %d)", self.config.listen, self.port)
        if not self.tls and not is_loopback(self.config.listen):
            log.warning("--insecure: plaintext on the non-loopback address %s; API keys cross the network in clear",
                        self.config.listen)  # fmt: skip
        if self.tls:
            log.info("transport: %s", "mutual TLS (client certificates required)" if self.tls.mutual else "TLS")
            self._tasks.append(
                asyncio.create_task(self.tls.watch(self.config.tls_reload_interval), name="meter-tls-reload")
            )
        self._tasks.append(asyncio.create_task(self._become_ready(), name="meter-ready"))
        return self.port

    async def _become_ready(self) -> None:
        delay = 0.5
        while True:
            try:
                applied = await migrate(self.database_url)
                if applied:
                    log.info("migrations applied: %s", ", ".join(applied))
                await self.db.open(wait_timeout=max(5.0, self.config.pool_timeout))
                await self.prices.seed_catalog()
                await self._ensure_partitions()
                break
            except (Unavailable, RolledBack, OSError) as exc:  # the database may not be up yet: keep trying
                log.warning("database not ready (%s); retrying in %.1fs", str(exc).strip().splitlines()[0], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except (MigrationError, StoreFailure, RejectedContent):
                # A broken migration or schema will not fix itself: say so loudly and stay NOT_SERVING.
                log.exception("cannot prepare the database; staying NOT_SERVING")
                return
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        log.info("database migrated and reachable: SERVING")
        self._tasks.append(asyncio.create_task(self._watch_database(), name="meter-health"))
        self._tasks.append(asyncio.create_task(self.limits.listen(), name="meter-limit-listener"))
        self._tasks.append(asyncio.create_task(self._keep_partitions_ahead(), name="meter-partitions"))
        self._tasks.append(
            asyncio.create_task(self.quota.sweep_expired(self.config.sweep_interval), name="meter-sweeper")
        )
        self._tasks.append(asyncio.create_task(self.alert_hub.run(), name="meter-alert-hub"))
        self._tasks.append(asyncio.create_task(self.evaluator.run(), name="meter-alert-evaluator"))
        self._tasks.append(asyncio.create_task(self.webhooks.run(), name="meter-alert-webhooks"))
        self._tasks.append(asyncio.create_task(self.channels.run(), name="meter-alert-channels"))
        if self.business is not None:
            self._tasks.append(asyncio.create_task(self._refresh_gauges(self.business), name="meter-gauges"))
        self._tasks.append(asyncio.create_task(self.denials.run(), name="meter-denial-counts"))
        self._tasks.append(asyncio.create_task(self.last_used.run(), name="meter-key-last-used"))

    def _feed_business_metrics(self, business: BusinessMetrics) -> None:
        self.metering.on_recorded = business.recorded
        denied = self.quota.on_denied

        def on_denied(tenant_id, dims, at):
            if denied is not None:
                denied(tenant_id, dims, at)
            business.denied(tenant_id, dims, at)

        self.quota.on_denied = on_denied
        self.channels.on_outcome = business.delivery

    async def _refresh_gauges(self, business: BusinessMetrics, interval: float = 15.0) -> None:
        while True:
            try:
                business.active.set(await active_reservations(self.db))
            except Exception as exc:  # noqa: BLE001 - the database may be down; next round
                log.debug("refreshing metric gauges failed: %s", exc)
            await asyncio.sleep(interval)

    async def _ensure_partitions(self) -> None:
        """Monthly calls partitions from the back-fill horizon to two months ahead."""
        now = (self._clock or utc_now)()
        await self.partitions.ensure_months(
            now - dt.timedelta(seconds=self.config.backfill_horizon), now + dt.timedelta(days=62)
        )

    async def _keep_partitions_ahead(self) -> None:
        while True:
            await asyncio.sleep(6 * 3600)
            try:
                await self._ensure_partitions()
            except Exception as exc:  # noqa: BLE001 - the database may be down; next round
                log.warning("creating calls partitions failed: %s", exc)

    async def _watch_database(self) -> None:
        serving = True
        while True:
            await asyncio.sleep(self.config.health_interval)
            ok = await self.probe.ping()  # its own connection: a busy pool is not a down database
            if ok != serving:
                serving = ok
                log.warning(
                    "database %s: health %s", "back" if ok else "unreachable", "SERVING" if ok else "NOT_SERVING"
                )
                await self._set_health(
                    health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                # Down: drop broken connections so recovery needs no failed RPCs. Back: start a fresh
                # reconnect attempt at once rather than at the end of the pool's backoff.
                await self.db.pool.check()

    async def _set_health(self, status) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: health NOT_SERVING, refuse new RPCs, let in-flight ones finish within grace, close the pool."""
        grace = self.config.grace_period if grace is None else grace
        await self.health.enter_graceful_shutdown()
        self.alert_hub.close_all()  # alert streams never finish by themselves: end them, do not wait out grace
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.stop(grace)
        try:
            await self.denials.flush()
        except Exception as exc:  # noqa: BLE001 - the database may be down at shutdown
            log.warning("final flush of denial counts failed: %s", exc)
        await self.last_used.flush()
        await self.quota.batcher.close()
        await self.metering.batcher.close()
        await self.db.close()
        await self.probe.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes queued spans; may wait on the collector
        if self.metrics_http:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()
        log.info("stopped")
