"""AsyncMeterClient: the asyncio twin of MeterClient (grpc.aio; the spool flusher is a task)."""

# `timeout` parameters here are gRPC deadlines sent to the server, not local waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import grpc

from meter import _core
from meter._core import BatchResult, Core, Settings
from meter.errors import MeterError, MeterUnavailable, QuotaExceeded, from_rpc_error
from meter.guard import AsyncGuard, metered
from meter.policy import FailurePolicy
from meter.results import CheckResult, RecordResult
from meter.spool import MemorySpool
from meter.tls import TLS
from meter.tls import resolve as resolve_tls
from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc


class AsyncMeterClient:
    """`AsyncMeterClient("localhost:50051", api_key="mk_...")`; same arguments as MeterClient, every
    call awaited. Create it inside the event loop that uses it; `await client.close()` at the end."""

    is_async = True

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        policy: FailurePolicy | None = None,
        spool: MemorySpool | bool | None = None,
        tls: TLS | bool | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        **settings,
    ) -> None:
        self.core = Core(api_key, policy, spool, Settings(**settings))
        self.settings = self.core.settings
        if channel is None:
            credentials, tls_options = resolve_tls(tls, credentials)
            channel = (
                grpc.aio.secure_channel(target, credentials, options=[*_core.CHANNEL_OPTIONS, *tls_options])
                if credentials
                else grpc.aio.insecure_channel(target, options=_core.CHANNEL_OPTIONS)
            )
        self._channel = channel
        self.stub = meter_pb2_grpc.MeterStub(channel)
        self.admin_stub = admin_pb2_grpc.MeterAdminStub(channel)
        self._flusher: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._delivery_lock: asyncio.Lock | None = None

    @property
    def spool(self) -> MemorySpool | None:
        return self.core.spool

    # -- quota --------------------------------------------------------------------------------------

    async def _check(self, request: meter_pb2.CheckQuotaRequest, timeout: float | None) -> CheckResult:
        self._start_flusher_if_needed()
        tokens = _core.estimated_tokens(request.estimate)
        if self.core.known_down():
            return self.core.on_check_unavailable(None, tokens)
        try:
            response = await self.stub.CheckQuota(
                request, metadata=self.core.metadata, timeout=timeout or self.settings.check_timeout
            )
        except grpc.RpcError as err:
            error = from_rpc_error(err)
            if isinstance(error, MeterUnavailable):
                return self.core.on_check_unavailable(error, tokens)
            raise error from None
        self.core.mark_up()
        return CheckResult.from_response(response)

    async def check(
        self, subject: str, provider: str, model: str, *, timeout: float | None = None, **kwargs
    ) -> CheckResult:
        """CheckQuota(CHECK_ONLY); a denial is returned, not raised."""
        return await self._check(_core.check_request(subject, provider, model, reserve=False, **kwargs), timeout)

    async def reserve(
        self, subject: str, provider: str, model: str, *, timeout: float | None = None, **kwargs
    ) -> CheckResult:
        """CheckQuota(RESERVE); raises QuotaExceeded on a denial."""
        result = await self._check(_core.check_request(subject, provider, model, reserve=True, **kwargs), timeout)
        if not result.allowed:
            raise QuotaExceeded(result)
        return result

    async def extend(
        self, reservation_id: str, *, ttl: float | None = None, **estimate
    ) -> meter_pb2.ExtendReservationResponse:
        request = meter_pb2.ExtendReservationRequest(
            reservation_id=reservation_id, additional=_core.estimate(**estimate), ttl=_core._duration(ttl)
        )
        return await self._unary(self.stub.ExtendReservation, request, self.settings.check_timeout)

    async def release(self, reservation_id: str) -> bool:
        request = meter_pb2.ReleaseReservationRequest(reservation_id=reservation_id)
        return (await self._unary(self.stub.ReleaseReservation, request, self.settings.check_timeout)).released

    def guard(self, subject: str, provider: str, model: str, **kwargs) -> AsyncGuard:
        """`async with client.guard(...) as call:` (see meter.guard)."""
        return AsyncGuard(self, subject, provider, model, **kwargs)

    def metered(self, subject, provider: str, model: str, **kwargs):
        return metered(self, subject, provider, model, **kwargs)

    # -- records ------------------------------------------------------------------------------------

    async def record(self, subject: str, provider: str, model: str, **kwargs) -> RecordResult:
        return await self.record_request(_core.record_request(subject, provider, model, **kwargs))

    async def record_request(self, request: meter_pb2.RecordCallRequest) -> RecordResult:
        core = self.core
        self._start_flusher_if_needed()
        if core.spool is not None and len(core.spool) and core.known_down():
            core.spool_or_raise(request, None)
            self._kick()
            return RecordResult.spooled_record(request.call_id)
        error: MeterError | None = None
        for attempt in range(self.settings.record_retries + 1):
            if attempt:
                await asyncio.sleep(core.backoff(attempt - 1))
            try:
                response = await self.stub.RecordCall(
                    request, metadata=core.metadata, timeout=self.settings.record_timeout
                )
            except grpc.RpcError as err:
                error, retry = core.classify(err)
                if not retry:
                    raise error from None
                continue
            core.mark_up()
            return RecordResult.from_response(response)
        core.mark_down()
        core.spool_or_raise(request, error)
        self._start_flusher_if_needed()
        self._kick()
        return RecordResult.spooled_record(request.call_id)

    async def record_many(self, requests: Iterable[meter_pb2.RecordCallRequest]) -> BatchResult:
        items = list(requests)
        tally = _core.BatchTally()
        for offset in range(0, len(items), _core.BATCH_LIMIT):
            chunk = items[offset : offset + _core.BATCH_LIMIT]
            reply = await self._batch_with_retries(chunk)
            if reply is None:
                for request in chunk:
                    self.core.spool_or_raise(request, None)
                tally.spooled += len(chunk)
                self._start_flusher_if_needed()
                continue
            tally.answered(reply, offset)
        return tally.result()

    async def _batch_with_retries(self, chunk):
        for attempt in range(self.settings.record_retries + 1):
            if attempt:
                await asyncio.sleep(self.core.backoff(attempt - 1))
            try:
                reply = await self.stub.RecordCalls(
                    meter_pb2.RecordCallsRequest(calls=chunk),
                    metadata=self.core.metadata,
                    timeout=self.settings.batch_timeout,
                )
                self.core.mark_up()
                return reply
            except grpc.RpcError as err:
                error, retry = self.core.classify(err)
                if not retry:
                    raise error from None
        self.core.mark_down()
        if self.core.spool is None:
            raise MeterUnavailable("Meter unreachable and the client has no spool")
        return None

    # -- spool delivery -----------------------------------------------------------------------------

    def _start_flusher_if_needed(self) -> None:
        spool = self.core.spool
        if self._closed or spool is None or not len(spool):
            return
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="meter-spool-flusher")

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        spool = self.core.spool
        while not self._closed and spool is not None and len(spool):
            try:
                while await self._flush_once():
                    pass
            except Exception:  # noqa: BLE001 - keep trying
                _core.log.exception("meter spool flush failed")
            if not len(spool):
                return
            try:
                async with asyncio.timeout(self.settings.flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _flush_once(self) -> bool:
        if self._delivery_lock is None:
            self._delivery_lock = asyncio.Lock()
        async with self._delivery_lock:  # one delivery at a time (the flusher task and flush())
            return await self._deliver_batch()

    async def _deliver_batch(self) -> bool:
        spool = self.core.spool
        batch = spool.head(self.settings.flush_batch) if spool is not None else []
        if not batch:
            return False
        try:
            reply = await self.stub.RecordCalls(
                meter_pb2.RecordCallsRequest(calls=batch),
                metadata=self.core.metadata,
                timeout=self.settings.batch_timeout,
            )
        except grpc.RpcError as err:
            error, _ = self.core.classify(err)
            self.core.mark_down()
            _core.log.info("spool delivery deferred (%d waiting): %s", len(spool), error)
            return False
        self.core.mark_up()
        # More right away only when this batch made progress (items can fail one by one, retryably).
        return self.core.settle_batch(batch, reply) > 0 and len(spool) > 0

    async def flush(self, timeout: float = 10.0) -> int:
        """Deliver the spool now, until empty or `timeout`; returns the records left."""
        spool = self.core.spool
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while spool is not None and len(spool) and loop.time() < deadline:
            if not await self._flush_once() and len(spool):
                await asyncio.sleep(min(self.settings.flush_interval, max(deadline - loop.time(), 0)))
        return len(spool) if spool is not None else 0

    # -- reads --------------------------------------------------------------------------------------

    async def usage(self, *, timeout: float | None = None, **kwargs) -> meter_pb2.GetUsageResponse:
        return await self._unary(
            self.stub.GetUsage, _core.usage_request(**kwargs), timeout or self.settings.read_timeout
        )

    async def list_calls(
        self, *, start=None, end=None, page_size: int = 50, page_token: str = "", **filters
    ) -> meter_pb2.ListCallsResponse:
        """ListCalls, newest first; filters are UsageFilter fields (subject, provider, outcome...)."""
        request = meter_pb2.ListCallsRequest(
            start=_core._timestamp(start),
            end=_core._timestamp(end),
            filter=meter_pb2.UsageFilter(**filters),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._unary(self.stub.ListCalls, request, self.settings.read_timeout)

    def alerts(
        self,
        *,
        since_id: int | None = None,
        min_severity: int = common_pb2.SEVERITY_UNSPECIFIED,
        kinds: Iterable[int] = (),
        subject_prefix: str = "",
        heartbeat_interval: float = 15.0,
        max_reconnect_delay: float = 5.0,
    ) -> AsyncAlertStream:
        """`async for alert in client.alerts(since_id=...)`: resumes after the last id on disconnect."""
        return AsyncAlertStream(
            self, since_id, min_severity, tuple(kinds), subject_prefix, heartbeat_interval, max_reconnect_delay
        )

    # -- control plane (MeterAdmin; the admin role) ---------------------------------------------------

    async def list_limits(self) -> list[admin_pb2.Limit]:
        request = admin_pb2.ListLimitsRequest()
        return list((await self._unary(self.admin_stub.ListLimits, request, self.settings.read_timeout)).limits)

    async def list_prices(self, *, provider: str = "", model: str = "", at=None) -> list[admin_pb2.Price]:
        """Price versions of the tenant and the catalog; with `at`, only the version in force then."""
        request = admin_pb2.ListPricesRequest(provider=provider, model=model, at=_core._timestamp(at))
        return list((await self._unary(self.admin_stub.ListPrices, request, self.settings.read_timeout)).prices)

    async def price_listing(self, *, provider: str = "", model: str = "", at=None) -> admin_pb2.ListPricesResponse:
        """list_prices' whole answer: the versions plus the shared catalog's source, version and import time."""
        request = admin_pb2.ListPricesRequest(provider=provider, model=model, at=_core._timestamp(at))
        return await self._unary(self.admin_stub.ListPrices, request, self.settings.read_timeout)

    async def set_price(self, price: admin_pb2.Price) -> admin_pb2.Price:
        """Add a price version of the caller's tenant (it overrides the shared catalog from effective_from)."""
        request = admin_pb2.SetPriceRequest(price=price)
        return (await self._unary(self.admin_stub.SetPrice, request, self.settings.read_timeout)).price

    async def set_alert_rule(self, rule: admin_pb2.AlertRule) -> admin_pb2.SetAlertRuleResponse:
        """Create or replace an alert rule (by id); its channels are replaced too, secrets included."""
        request = admin_pb2.SetAlertRuleRequest(rule=rule)
        return await self._unary(self.admin_stub.SetAlertRule, request, self.settings.read_timeout)

    async def list_alert_rules(self) -> list[admin_pb2.AlertRule]:
        request = admin_pb2.ListAlertRulesRequest()
        return list((await self._unary(self.admin_stub.ListAlertRules, request, self.settings.read_timeout)).rules)

    async def list_api_keys(self, *, include_revoked: bool = False) -> list[admin_pb2.ApiKey]:
        request = admin_pb2.ListApiKeysRequest(include_revoked=include_revoked)
        return list((await self._unary(self.admin_stub.ListApiKeys, request, self.settings.read_timeout)).keys)

    async def set_limit(self, limit: admin_pb2.Limit) -> admin_pb2.SetLimitResponse:
        """Create or replace a limit (by id)."""
        request = admin_pb2.SetLimitRequest(limit=limit)
        return await self._unary(self.admin_stub.SetLimit, request, self.settings.read_timeout)

    async def create_api_key(
        self, name: str, roles, *, expire_time=None, bind_cert_subject: str = "", bind_san: str = ""
    ) -> admin_pb2.CreateApiKeyResponse:
        """A new key of the caller's tenant; `.secret` is the only time the full key is shown. Optional:
        an expiry (datetime) and a binding to a client certificate's CN or SAN (mutual TLS)."""
        request = admin_pb2.CreateApiKeyRequest(
            name=name, roles=list(roles), expire_time=_core._timestamp(expire_time),
            bind_cert_subject=bind_cert_subject, bind_san=bind_san,
        )  # fmt: skip
        return await self._unary(self.admin_stub.CreateApiKey, request, self.settings.read_timeout)

    async def delete_limit(self, limit_id: str) -> None:
        await self._unary(
            self.admin_stub.DeleteLimit, admin_pb2.DeleteLimitRequest(id=limit_id), self.settings.read_timeout
        )

    async def delete_alert_rule(self, rule_id: str) -> None:
        request = admin_pb2.DeleteAlertRuleRequest(id=rule_id)
        await self._unary(self.admin_stub.DeleteAlertRule, request, self.settings.read_timeout)

    async def revoke_api_key(self, key_id: str) -> admin_pb2.ApiKey:
        request = admin_pb2.RevokeApiKeyRequest(id=key_id)
        return (await self._unary(self.admin_stub.RevokeApiKey, request, self.settings.read_timeout)).key

    async def _unary(self, method, request, timeout: float):
        try:
            return await method(request, metadata=self.core.metadata, timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- lifetime -----------------------------------------------------------------------------------

    async def close(self, flush_timeout: float = 2.0) -> int:
        """Like MeterClient.close: returns the records left undelivered in the spool."""
        if self._closed:
            return 0
        if self.core.spool is not None and len(self.core.spool) and flush_timeout > 0:
            await self.flush(flush_timeout)
        self._closed = True
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        await self._channel.close()
        left = 0
        if self.core.spool is not None:
            left = len(self.core.spool)
            self.core.spool.close()
        return left

    async def __aenter__(self) -> AsyncMeterClient:
        self._start_flusher_if_needed()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncAlertStream:
    """Async iterator of alerts with resumption; `last_id` is the cursor, `reconnects` the reconnections."""

    def __init__(
        self, client: AsyncMeterClient, since_id, min_severity, kinds, subject_prefix, heartbeat, max_delay
    ) -> None:
        self.client = client
        self.last_id: int | None = since_id
        self.reconnects = 0
        self._args = (min_severity, kinds, subject_prefix, heartbeat)
        self._max_delay = max_delay

    def __aiter__(self) -> AsyncIterator[meter_pb2.Alert]:
        return self._run()

    async def _run(self) -> AsyncIterator[meter_pb2.Alert]:
        failures = 0
        silence = 3 * self._args[3]
        while True:
            call = self.client.stub.StreamAlerts(
                _core.alerts_request(self.last_id, *self._args), metadata=self.client.core.metadata
            )
            try:
                while True:
                    async with asyncio.timeout(silence):  # silence of 3 heartbeats: dead peer
                        event = await call.read()
                    if event is grpc.aio.EOF:
                        break
                    failures = 0
                    if event.HasField("alert"):
                        self.last_id = event.alert.id
                        yield event.alert
                    elif self.last_id is None and event.heartbeat.last_id:
                        self.last_id = event.heartbeat.last_id
            except TimeoutError:
                pass
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if not (
                    isinstance(error, MeterUnavailable)
                    or error.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
                ):
                    raise error from None
            finally:
                call.cancel()
            delay = min(0.1 * 2**failures, self._max_delay)
            failures += 1
            self.reconnects += 1
            await asyncio.sleep(delay)
