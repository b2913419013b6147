"""The alert engine's moving parts in a process: streams (replay, then the hub), the periodic
evaluator (one leader replica at a time), the denial counter and the webhook sender."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from meterd.domain.alert_judges import judge_count, judge_projection, judge_rollups
from meterd.domain.alert_records import DenialKey, WebhookDue
from meterd.domain.alerts import (
    PERIODIC_KINDS,
    PROJECTION_BASIS,
    ROLLUP_KINDS,
    Alert,
    AlertFilter,
    AlertKind,
    AlertRule,
    Candidate,
)
from meterd.domain.calls import Dimensions
from meterd.domain.clock import utc_now
from meterd.domain.errors import ResourceExhausted, Unavailable
from meterd.domain.usage import hour_ceil, hour_floor
from meterd.domain.windows import window_end, window_start
from meterd.service.alert_hub import OVERFLOW, SHUTDOWN, AlertHub
from meterd.service.delivery_rounds import run_delivery_rounds
from meterd.service.digests import DigestScheduler
from meterd.service.ports import AlertPort
from meterd.store.notify import session

log = logging.getLogger(__name__)

# Session-level advisory lock of the evaluator leader ("meteralt"); released by PostgreSQL when the
# leader's connection ends, whether it stopped, crashed or lost the network.
EVALUATOR_LOCK_KEY = 0x6D65746572616C74
REPLAY_PAGE = 500


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    server_time: dt.datetime
    last_id: int
    resume_id: int  # every alert <= it has been sent (see Heartbeat.resume_id in meter.proto)


class AlertStreams:
    def __init__(self, store: AlertPort, hub: AlertHub, *, buffer: int, ready_timeout: float = 10.0) -> None:
        self.store = store
        self.hub = hub
        self.buffer = buffer
        self.ready_timeout = ready_timeout

    async def stream(self, f: AlertFilter, since_id: int | None, heartbeat: float) -> AsyncIterator[Alert | Heartbeat]:
        """Stored alerts after since_id, then live ones: no gap, no duplicate (see alert_hub.py)."""
        try:
            async with asyncio.timeout(self.ready_timeout):
                await self.hub.ready.wait()
        except TimeoutError:
            raise Unavailable("the alert stream is not ready (database unreachable?); retry with backoff") from None
        sub, low_at_subscribe = self.hub.subscribe(f, self.buffer)
        last_id = since_id or 0
        try:
            # Only ids above the hub's low at subscription can come from the hub again.
            replayed: set[int] = set()
            if since_id is not None:
                cursor = since_id
                while True:
                    page = await self.store.replay(f, cursor, REPLAY_PAGE)
                    for alert in page:
                        if alert.id > low_at_subscribe:
                            replayed.add(alert.id)
                        last_id = max(last_id, alert.id)
                        yield alert
                    if len(page) < REPLAY_PAGE:
                        break
                    cursor = page[-1].id
            while True:
                try:
                    item = await asyncio.wait_for(sub.get(), heartbeat)
                except TimeoutError:
                    # The queue is empty: everything the hub fanned out is sent, and every id <= the
                    # hub's low was either replayed or fanned out after we subscribed.
                    yield Heartbeat(utc_now(), last_id, max(since_id or 0, self.hub.low or 0))
                    continue
                if item is SHUTDOWN:
                    raise Unavailable(
                        f"the server is shutting down; reconnect (with since_id={last_id}) to another replica"
                    )
                if item is OVERFLOW:
                    raise ResourceExhausted(
                        f"this stream fell more than {sub.buffer} alerts behind (slow reader); reconnect with "
                        f"since_id={last_id} to resume without losing any"
                    )
                if item.id in replayed:
                    replayed.discard(item.id)
                    continue
                last_id = max(last_id, item.id)
                yield item
        finally:
            self.hub.unsubscribe(sub)


class DenialCounter:
    """Counts quota denials in memory and adds them to quota_denials about once a second, so the
    check path never waits for it (a crash loses at most the last second's counts)."""

    def __init__(self, store: AlertPort, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or utc_now
        self._counts: dict[DenialKey, int] = defaultdict(int)

    def denied(self, tenant_id: str, dims: Dimensions, at: dt.datetime | None = None) -> None:
        minute = (at or self.clock()).replace(second=0, microsecond=0)
        self._counts[DenialKey(tenant_id, minute, dims.subject, dims.provider, dims.model, dims.operation)] += 1

    async def flush(self) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, defaultdict(int)
        try:
            await self.store.add_denials(dict(counts))
        except Exception:
            for key, n in counts.items():  # keep them for the next flush
                self._counts[key] += n
            raise

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the database may be down; next round
                log.warning("flushing denial counts failed: %s", exc)


class Evaluator:
    """Periodic rules (window cost, error rate, latency p95, unpriced models, denials, expired
    reservations), evaluated by one replica at a time: the holder of a session advisory lock on a
    connection of its own. When the leader dies its session ends, the lock is free, and another
    replica takes it at its next try. Alerts are deduplicated per (rule, window, group) by
    meter_raise_alert, so even two leaders for a moment (a partition) would not double an alert."""

    def __init__(
        self,
        store: AlertPort,
        conninfo: str,
        *,
        interval: float,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.conninfo = conninfo
        self.interval = interval
        self.clock = clock
        self.leader = False
        self.rounds = 0
        self.digests: DigestScheduler | None = None  # scheduled report digests, run by the leader too

    def now(self) -> dt.datetime:
        return self.clock() if self.clock else utc_now()

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with session(self.conninfo) as db_session:
                    delay = 0.5
                    while True:
                        if not self.leader:
                            if await db_session.try_lock(EVALUATOR_LOCK_KEY):
                                self.leader = True
                                log.info("alert evaluator: this replica is the leader")
                        else:
                            await db_session.check()  # the lock lives exactly as long as this session
                        if self.leader:
                            try:
                                await self.evaluate()
                            except Unavailable:
                                raise
                            except Exception:
                                log.exception("alert evaluation round failed")
                        await asyncio.sleep(self.interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - lost the session, hence the lock: start over
                if self.leader:
                    log.warning("alert evaluator: leadership lost (%s)", exc)
                self.leader = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def evaluate(self) -> int:
        """One round over every enabled periodic rule; returns the number of alerts raised."""
        now = self.now()
        raised = 0
        by_tenant: dict[str, list[Candidate]] = defaultdict(list)
        for enabled in await self.store.enabled_rules(PERIODIC_KINDS):
            for at in self._instants(enabled.rule, now):
                by_tenant[enabled.tenant_id] += await self._judge(enabled.tenant_id, enabled.rule, at)
        for tenant_id, candidates in by_tenant.items():
            if candidates:
                raised += len(await self.store.raise_candidates(tenant_id, candidates, now if self.clock else None))
        if self.digests is not None:
            raised += await self.digests.run_due(now, now if self.clock else None)
        self.rounds += 1
        return raised

    def _instants(self, rule: AlertRule, now: dt.datetime) -> list[dt.datetime]:
        """Now, and a moment in the previous window when it ended since the last round (so what
        happened in its last seconds is still judged)."""
        assert rule.window is not None
        earlier = now - dt.timedelta(seconds=2 * self.interval)
        if window_start(rule.window, earlier) != window_start(rule.window, now):
            return [earlier, now]
        return [now]

    async def _judge(self, tenant_id: str, rule: AlertRule, at: dt.datetime) -> list[Candidate]:
        assert rule.window is not None
        start, end = window_start(rule.window, at), window_end(rule.window, at)
        if rule.kind is AlertKind.PROJECTED_OVER_BUDGET:
            # Rollups hold whole hours: the hour holding `at` counts as far as it has been recorded.
            until = hour_ceil(at)
            so_far = sum(g.cost_nanos for g in await self.store.rollup_groups(tenant_id, rule, start, until))
            basis_start = hour_floor(at - PROJECTION_BASIS)
            basis = sum(g.cost_nanos for g in await self.store.rollup_groups(tenant_id, rule, basis_start, until))
            return judge_projection(rule, start, end, at, so_far, basis, basis_start)
        if rule.kind in ROLLUP_KINDS:
            return judge_rollups(rule, start, end, await self.store.rollup_groups(tenant_id, rule, start, end))
        if rule.kind is AlertKind.DENIALS:
            return judge_count(rule, start, end, await self.store.denials(tenant_id, rule, start, end))
        return judge_count(rule, start, end, await self.store.expired_reservations(tenant_id, rule, start, end))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Meter-Signature header: HMAC-SHA256 over "<timestamp>.<body>" with the rule's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """Delivers alert_webhooks rows: POST of the alert as JSON, signed, retried with exponential
    backoff until max_attempts. Every replica may run one: rows are leased with SKIP LOCKED."""

    def __init__(
        self, store: AlertPort, *, timeout: float, max_attempts: int, retry_base: float, lease: float = 60.0
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.lease = dt.timedelta(seconds=max(lease, timeout * 2))
        self._wake = asyncio.Event()
        self.delivered_total = self.failed_total = 0  # attempts, for the metrics

    def wake(self, _alerts: list[Alert] | None = None) -> None:
        self._wake.set()

    async def run(self, poll: float = 1.0) -> None:
        await run_delivery_rounds(self.send_due, self._wake, poll, "webhook")

    async def send_due(self) -> int:
        rows = await self.store.claim_webhooks(self.lease)
        await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, due: WebhookDue) -> None:
        alert = due.alert
        url, secret, attempts = due.url, due.secret, due.attempts
        if not url:  # the rule was deleted or lost its webhook meanwhile
            await self.store.webhook_done(
                alert.tenant_id, alert.id, ok=False, error="rule has no webhook", retry_in=None
            )
            return
        body = json.dumps(alert.to_json(), separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "meter-alerts/1",
            "X-Meter-Alert-Id": str(alert.id),
            "X-Meter-Timestamp": stamp,
            "X-Meter-Signature": signature(secret, stamp, body),
        }
        try:
            status = await asyncio.to_thread(self._post, url, body, headers)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if not error:
            self.delivered_total += 1
            await self.store.webhook_done(alert.tenant_id, alert.id, ok=True, error="", retry_in=None)
            return
        self.failed_total += 1
        retry_in = None
        if attempts < self.max_attempts:
            retry_in = dt.timedelta(seconds=min(self.retry_base * 2 ** (attempts - 1), 3600))
        log.warning("webhook for alert %d to %s failed (attempt %d): %s", alert.id, url, attempts, error)
        await self.store.webhook_done(alert.tenant_id, alert.id, ok=False, error=error, retry_in=retry_in)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only, validated
                return response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
