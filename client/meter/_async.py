"""The Meter client, written once in _async.py: AsyncMeterClient (asyncio, grpc.aio, the spool flusher a
task), and MeterClient in _sync.py, generated from it by tools/async_to_sync.py (`make sync`): blocking,
thread-safe, the flusher a thread. Where the two differ, `if True:  # ASYNC` holds the asyncio code and
its `else:` the blocking code (see the tool's docstring)."""

# `timeout` parameters here are gRPC deadlines sent to the server, not local waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

if True:  # ASYNC
    import asyncio
else:
    import threading
    from collections.abc import Callable

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
    """`AsyncMeterClient("localhost:50051", api_key="mk_...")`; `await client.close()` at the end.

    policy: what a check does when Meter is unreachable (default: an emergency allowance of 60 calls
      and 100,000 tokens a minute; see meter.policy).
    spool: where records wait during an outage: a MemorySpool (default), a FileSpool, or False (none:
      records raise MeterUnavailable after their retries).
    tls: a meter.TLS (CA file, optional client certificate for mutual TLS), or True for the system's CAs.
    credentials: grpc.ChannelCredentials of your own instead of tls=; plaintext when neither is given.
    Other keyword arguments are `meter.Settings` fields (timeouts, retries...).
    """

    # ASYNC: create it inside the event loop that uses it (its channel and flusher task belong to it).
    if True:  # ASYNC
        is_async = True
    else:
        is_async = False

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
        if True:  # ASYNC
            self._flusher: asyncio.Task[None] | None = None
            self._wake: asyncio.Event | None = None
            self._closed = False
            self._delivery_lock = asyncio.Lock()
        else:
            self._stop = threading.Event()
            self._wake = threading.Event()
            self._thread: threading.Thread | None = None
            self._flusher_lock = threading.Lock()
            self._delivery_lock = threading.Lock()
            self._start_flusher_if_needed()  # a file spool left by an earlier process
            self._kick()

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
        """CheckQuota(CHECK_ONLY): would the call be allowed now? A denial is returned, not raised.
        Keywords: operation, labels, estimate_tokens (uncached input), max_output_tokens,
        cached_read_tokens, units, requests, estimate_cost_nanos."""
        return await self._check(_core.check_request(subject, provider, model, reserve=False, **kwargs), timeout)

    async def reserve(
        self, subject: str, provider: str, model: str, *, timeout: float | None = None, **kwargs
    ) -> CheckResult:
        """CheckQuota(RESERVE): hold the estimate on every matched limit, all or none. Raises
        QuotaExceeded on a denial. Extra keywords: ttl (seconds), reservation_id (idempotent retries)."""
        result = await self._check(_core.check_request(subject, provider, model, reserve=True, **kwargs), timeout)
        if not result.allowed:
            raise QuotaExceeded(result)
        return result

    async def extend(
        self, reservation_id: str, *, ttl: float | None = None, **estimate
    ) -> meter_pb2.ExtendReservationResponse:
        """Add to a live reservation (streaming); allowed=False means stop generating."""
        request = meter_pb2.ExtendReservationRequest(
            reservation_id=reservation_id, additional=_core.estimate(**estimate), ttl=_core._duration(ttl)
        )
        return await self._unary(self.stub.ExtendReservation, request, self.settings.check_timeout)

    async def release(self, reservation_id: str) -> bool:
        """Give a reservation back (the call did not happen); False when it was already settled or gone."""
        request = meter_pb2.ReleaseReservationRequest(reservation_id=reservation_id)
        return (await self._unary(self.stub.ReleaseReservation, request, self.settings.check_timeout)).released

    def guard(self, subject: str, provider: str, model: str, **kwargs) -> AsyncGuard:
        """`async with client.guard(...) as call:` reserves, runs the block, records latency and outcome
        (see meter.guard)."""
        return AsyncGuard(self, subject, provider, model, **kwargs)

    def metered(self, subject, provider: str, model: str, **kwargs):
        """Decorator form of guard() (see meter.guard.metered)."""
        return metered(self, subject, provider, model, **kwargs)

    # -- records ------------------------------------------------------------------------------------

    async def record(self, subject: str, provider: str, model: str, **kwargs) -> RecordResult:
        """RecordCall with retries (same call_id), then the spool. See meter._core.record_request for
        the keywords (call_id, reservation_id, usage or the counts, latency, error_code...)."""
        return await self.record_request(_core.record_request(subject, provider, model, **kwargs))

    async def record_request(self, request: meter_pb2.RecordCallRequest) -> RecordResult:
        core = self.core
        self._start_flusher_if_needed()
        if core.spool is not None and len(core.spool) and core.known_down():
            core.spool_or_raise(request, None)  # keep order behind the outage's records
            self._start_flusher_if_needed()
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
        """RecordCalls in chunks of 1,000; a chunk Meter cannot take (after retries) is spooled whole.
        Build items with meter.record_request(...)."""
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
                self._kick()
                continue
            tally.answered(reply, offset)
        return tally.result()

    async def _batch_with_retries(self, chunk) -> meter_pb2.RecordCallsResponse | None:
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
        if True:  # ASYNC
            if self._closed or spool is None or not len(spool):
                return
            if self._flusher is None or self._flusher.done():
                self._wake = asyncio.Event()
                self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="meter-spool-flusher")
        else:
            if self._stop.is_set() or spool is None or not len(spool):
                return
            with self._flusher_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._flush_loop, name="meter-spool-flusher", daemon=True)
                    self._thread.start()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        if True:  # ASYNC
            spool, wake = self.core.spool, self._wake
            assert wake is not None  # set with the task that runs this
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
                        await wake.wait()
                except TimeoutError:
                    pass
                wake.clear()
        else:
            while not self._stop.is_set():
                self._wake.wait(self.settings.flush_interval)
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    while self._flush_once():
                        pass
                except Exception:  # noqa: BLE001 - the flusher must outlive any one failure
                    _core.log.exception("meter spool flush failed")
                self._stop.wait(self.settings.flush_interval)

    async def _flush_once(self) -> bool:
        """Deliver one batch from the spool; True when there may be more to deliver right away."""
        async with self._delivery_lock:  # one delivery at a time (the flusher and flush())
            return await self._deliver_batch()

    async def _deliver_batch(self) -> bool:
        spool = self.core.spool
        if spool is None:
            return False
        batch = spool.head(self.settings.flush_batch)
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
        """Deliver the spool now, until it is empty or `timeout` passes; returns the records left."""
        deadline = time.monotonic() + timeout
        spool = self.core.spool
        while spool is not None and len(spool) and time.monotonic() < deadline:
            if not await self._flush_once() and len(spool):
                await asyncio.sleep(min(self.settings.flush_interval, max(deadline - time.monotonic(), 0)))
        return len(spool) if spool is not None else 0

    # -- reads --------------------------------------------------------------------------------------

    async def usage(self, *, timeout: float | None = None, **kwargs) -> meter_pb2.GetUsageResponse:
        """GetUsage: totals, rows per group, projection, forecast, and with include_limits=True the
        selected limits' statuses with their run-out (see meter._core.usage_request for keywords)."""
        return await self._unary(
            self.stub.GetUsage, _core.usage_request(**kwargs), timeout or self.settings.read_timeout
        )

    async def recommendations(self, **kwargs) -> meter_pb2.GetRecommendationsResponse:
        """GetRecommendations: cheaper models, caching, hot spots (see meter._core.recommendations_request)."""
        return await self._unary(
            self.stub.GetRecommendations, _core.recommendations_request(**kwargs), self.settings.read_timeout
        )

    async def list_calls(self, **kwargs) -> meter_pb2.ListCallsResponse:
        """ListCalls, newest first unless order_by says "cost" or "latency"; keywords: start, end,
        page_size, page_token, the search minimums and UsageFilter fields (see meter._core.list_calls_request)."""
        return await self._unary(self.stub.ListCalls, _core.list_calls_request(**kwargs), self.settings.read_timeout)

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
        """`async for alert in client.alerts(since_id=...)`: alerts after since_id, then live ones,
        forever; reconnects after a disconnect (or a silence of three heartbeats) and resumes after the
        last id it yielded. Auth errors and UNIMPLEMENTED are raised."""
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
        """Try to deliver the spool for up to flush_timeout, stop the flusher and close the channel;
        returns the records left undelivered (lost with a MemorySpool, kept by a FileSpool for the next
        process), so the caller can log them. Closing twice is harmless (and returns 0)."""
        if True:  # ASYNC
            if self._closed:
                return 0
        else:
            if self._stop.is_set():
                return 0
        if self.core.spool is not None and len(self.core.spool) and flush_timeout > 0:
            await self.flush(flush_timeout)
        if True:  # ASYNC
            self._closed = True
            if self._flusher is not None and not self._flusher.done():
                self._flusher.cancel()
                try:
                    await self._flusher
                except asyncio.CancelledError:
                    pass
        else:
            self._stop.set()
            self._wake.set()
            if self._thread is not None:
                self._thread.join(timeout=self.settings.batch_timeout + 1)
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
    """Iterator of alerts with resumption; `last_id` is the cursor (the next reconnection resumes after
    it, so a caller may move it), `reconnects` counts reconnections. The blocking stream also has
    `events()` (the raw stream messages, heartbeats included), `on_disconnect(error, delay)` (when set,
    called before each reconnection; it may raise to stop instead) and `close()`."""

    def __init__(
        self, client: AsyncMeterClient, since_id, min_severity, kinds, subject_prefix, heartbeat, max_delay
    ) -> None:
        self.client = client
        self.last_id: int | None = since_id
        self.reconnects = 0
        if True:  # ASYNC
            pass
        else:
            self.on_disconnect: Callable[[MeterError, float], None] | None = None
        self._args = (min_severity, kinds, subject_prefix, heartbeat)
        self._max_delay = max_delay
        if True:  # ASYNC
            pass
        else:
            self._call: grpc.Call | None = None
            self._timer: threading.Timer | None = None
            self._closed = False

    if True:  # ASYNC

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
                        if not isinstance(event, meter_pb2.StreamAlertsResponse):  # grpc.aio.EOF: the stream ended
                            break
                        failures = 0
                        if event.HasField("alert"):
                            self.last_id = event.alert.id
                            yield event.alert
                        elif self.last_id is None and event.heartbeat.last_id:
                            self.last_id = event.heartbeat.last_id  # live-only start: now we have a cursor
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
    else:

        def __aiter__(self) -> AsyncIterator[meter_pb2.Alert]:
            return (event.alert for event in self.events() if event.HasField("alert"))

        def _watchdog(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
            call = self._call
            assert call is not None
            self._timer = threading.Timer(3 * self._args[3], call.cancel)  # silence of 3 heartbeats: dead peer
            self._timer.daemon = True
            self._timer.start()

        def events(self) -> AsyncIterator[meter_pb2.StreamAlertsResponse]:
            failures = 0
            while not self._closed:
                request = _core.alerts_request(self.last_id, *self._args)
                self._call = stream = self.client.stub.StreamAlerts(request, metadata=self.client.core.metadata)
                try:
                    self._watchdog()
                    for event in stream:
                        self._watchdog()
                        failures = 0
                        if event.HasField("alert"):
                            self.last_id = event.alert.id
                        elif self.last_id is None and event.heartbeat.last_id:
                            self.last_id = event.heartbeat.last_id  # live-only start: now we have a cursor
                        yield event
                    error = MeterError("the stream ended", grpc.StatusCode.OK)
                except grpc.RpcError as err:
                    error = from_rpc_error(err)
                    if not (isinstance(error, MeterUnavailable) or error.code in STREAM_RETRY):
                        raise error from None
                finally:
                    if self._timer is not None:
                        self._timer.cancel()
                if self._closed:
                    return
                delay = min(0.1 * 2**failures, self._max_delay)
                failures += 1
                self.reconnects += 1
                if self.on_disconnect is not None:
                    self.on_disconnect(error, delay)
                time.sleep(delay)

        def close(self) -> None:
            self._closed = True
            if self._call is not None:
                self._call.cancel()


# Besides UNAVAILABLE and DEADLINE_EXCEEDED (MeterUnavailable), what ends a blocking stream that a
# reconnection can resume: a cancelled call (the watchdog's, or a proxy's), a server's transient
# INTERNAL/UNKNOWN, and fairness refusals (RESOURCE_EXHAUSTED with RetryInfo: come back later).
STREAM_RETRY = (
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
