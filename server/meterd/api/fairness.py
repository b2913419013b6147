"""Fair sharing of one server process between tenants, and cheap refusal of unknown keys.

Two interceptors around the auth interceptor (MeterInterceptor):

- PeerInterceptor, outside it, only notes the caller's host, so that AuthGuard (the key look-up the
  auth interceptor's cache calls on a miss) can count failed authentications per host;
- TenantGateInterceptor, inside it (the principal is known), bounds the RPCs each tenant has in
  progress and starts per second while others are active: over its share a tenant waits behind its
  own RPCs (then gets RESOURCE_EXHAUSTED with RetryInfo) instead of queueing in front of every other
  tenant for the event loop, connections and batch slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

from meterd.api.interceptor import current_principal, required_role
from meterd.api.wrap_once import WrapOnceInterceptor
from meterd.domain.errors import ResourceExhausted
from meterd.domain.keys import Principal, hash_key

_peer: contextvars.ContextVar[str] = contextvars.ContextVar("meter_peer", default="")

# Suggested wait for a tenant over its in-flight share: about one group-commit round trip or two.
IN_FLIGHT_RETRY_AFTER = 0.05
FAILURE_WINDOW = 10.0  # seconds over which a host's failed authentications are counted
ACTIVE_SWEEP = 0.25  # seconds between sweeps of the tenants no longer active (not one per RPC)
MAX_ENTRIES = 10_000  # bound of each in-memory table (cleared when full: a flood cannot grow memory)


def peer_host(peer: str) -> str:
    """ "ipv4:10.0.0.7:53122" -> "ipv4:10.0.0.7": a client's connections share one budget."""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class AuthGuard:
    """Wraps the database look-up of API keys (called only when the verified-key cache misses).

    Unknown keys are remembered by their SHA-256 for `unknown_ttl` seconds, so repeating one costs no
    query. The cache is by whole key, not by key id: by id, anyone could lock a real key out by
    sending its id with a wrong secret. Keys never seen before each cost a query, so a host is also
    allowed only `peer_failures` failed authentications per window; past that, its keys not verified
    recently are refused with RESOURCE_EXHAUSTED before any query."""

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[Principal | None]],
        *,
        unknown_ttl: float,
        peer_failures: int,
        clock: Callable[[], float] = time.monotonic,
        refusal_delay: float = 1.0,
    ) -> None:
        self._lookup, self.unknown_ttl, self.peer_failures, self.clock = lookup, unknown_ttl, peer_failures, clock
        self.refusal_delay = refusal_delay
        self._unknown: dict[bytes, float] = {}  # digest -> refused until
        self._verified: dict[bytes, float] = {}  # digest -> last verified (let through an over-budget host)
        self._failures: dict[str, list[float]] = {}  # host -> [window start, failures]
        self.queries = 0  # database look-ups made (tests and metrics)

    async def lookup(self, full_key: str) -> Principal | None:
        digest = hash_key(full_key)
        now = self.clock()
        host = _peer.get()
        if digest not in self._verified and self.peer_failures and host:
            window = self._failures.get(host)
            if window is not None and window[0] + FAILURE_WINDOW > now and window[1] >= self.peer_failures:
                # Answered late on purpose: a client looping on refusals then costs about one cheap
                # RPC per second per request it keeps in flight, instead of the whole transport's CPU.
                # Jittered, so that a flood's refusals do not come back (and return) all at once.
                await asyncio.sleep(self.refusal_delay * (0.5 + random.random()))
                raise ResourceExhausted(
                    f"more than {self.peer_failures} failed authentications from this host in "
                    f"{FAILURE_WINDOW:g}s; check the API key, then retry later",
                    retry_after=window[0] + FAILURE_WINDOW - now,
                )
        until = self._unknown.get(digest)
        if until is not None and until > now:
            self._failed(host, now)
            return None
        self.queries += 1
        principal = await self._lookup(full_key)
        if principal is None:
            _put(self._unknown, digest, now + self.unknown_ttl)
            self._failed(host, now)
        else:
            self._unknown.pop(digest, None)
            _put(self._verified, digest, now)
        return principal

    def _failed(self, host: str, now: float) -> None:
        if not host:
            return
        window = self._failures.get(host)
        if window is None or window[0] + FAILURE_WINDOW <= now:
            _put(self._failures, host, [now, 1])
        else:
            window[1] += 1


def _put(table: dict, key, value) -> None:
    if len(table) >= MAX_ENTRIES and key not in table:
        table.clear()
    table[key] = value


class TenantGate:
    """Per-tenant shares of one server process, applied while another tenant is active (alone, a
    tenant may use the whole server: group commit needs concurrency to make large batches).

    Two bounds, each 0 for off: at most `max_in_flight` RPCs in progress, and at most `max_rate`
    RPCs started per second (a token bucket holding a tenth of a second's worth). The in-flight bound
    alone does not bound a tenant's rate: RPCs that take a millisecond each let 8 in flight start
    thousands a second, enough to keep the event loop saturated for everybody. A tenant over either
    bound waits, in order and without touching the database, up to `max_wait` seconds and
    `WAITING_FACTOR` x max_in_flight (or x 8) waiters, then gets RESOURCE_EXHAUSTED with RetryInfo.
    Waiting costs the server nothing but memory, so a flooding client that retries at once is slowed
    to the share instead of spinning on refusals. Other tenants are admitted at once meanwhile."""

    WAITING_FACTOR = 64
    ACTIVE_WINDOW = 2.0  # seconds since its last RPC during which a tenant counts as active
    BURST_SECONDS = 0.1  # the bucket holds this many seconds' worth of the rate

    def __init__(
        self,
        max_in_flight: int,
        max_wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_rate: float = 0.0,
    ) -> None:
        self.max_in_flight, self.max_wait, self.clock, self.max_rate = max_in_flight, max_wait, clock, max_rate
        self.burst = max(1.0, max_rate * self.BURST_SECONDS)
        self.max_waiting = self.WAITING_FACTOR * (max_in_flight or 8)
        self._seen: dict[str, float] = {}  # tenant -> its last RPC
        self._swept = -ACTIVE_SWEEP
        self._in_flight: dict[str, int] = {}
        self._tokens: dict[str, list[float]] = {}  # tenant -> [tokens, when counted]
        self._waiters: dict[str, deque[asyncio.Future]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}  # tenant -> wake-up when its next token is due
        self.refused = 0

    def _refuse(self, tenant_id: str, why: str) -> ResourceExhausted:
        self.refused += 1
        waiting = len(self._waiters.get(tenant_id, ()))
        # The queue ahead at the tenant's rate, stretched by up to 2x at random: clients that honour
        # RetryInfo then come back spread out rather than as one burst when a whole queue timed out.
        ahead = max(IN_FLIGHT_RETRY_AFTER, waiting / self.max_rate if self.max_rate else 0.0)
        retry_after = ahead * (1.0 + random.random())
        return ResourceExhausted(
            f"this tenant has {self._in_flight.get(tenant_id, 0)} requests in progress on this server and "
            f"{why} (share while other tenants are active: {self._share()}); retry after the delay in "
            "RetryInfo, or send fewer at once (RecordCalls carries many calls in one request)",
            retry_after=retry_after,
        )

    def _share(self) -> str:
        bounds = [f"at most {self.max_in_flight} in progress"] if self.max_in_flight else []
        bounds += [f"at most {self.max_rate:g} started per second"] if self.max_rate else []
        return ", ".join(bounds) or "none"

    async def enter(self, tenant_id: str) -> None:
        now = self.clock()
        contended = self._contended(tenant_id, now)
        _put(self._seen, tenant_id, now)
        if tenant_id not in self._waiters:
            wait = self._may_start(tenant_id, now, contended)
            if wait == 0.0:
                self._in_flight[tenant_id] = self._in_flight.get(tenant_id, 0) + 1
                return
        else:
            wait = 0.0  # behind its own queue, which the pump serves in order
        waiters = self._waiters.setdefault(tenant_id, deque())
        if len(waiters) >= self.max_waiting:
            raise self._refuse(tenant_id, f"{len(waiters)} more waiting")
        slot = asyncio.get_running_loop().create_future()
        waiters.append(slot)
        if 0.0 < wait < float("inf"):
            self._wake_in(tenant_id, wait)
        try:
            await asyncio.wait_for(slot, self.max_wait)
        except TimeoutError:
            self._forget(tenant_id, slot)
            raise self._refuse(tenant_id, f"its share did not come free within {self.max_wait:g}s") from None
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self.leave(tenant_id)  # handed a slot just as the caller went away: pass it on
            else:
                self._forget(tenant_id, slot)
            raise

    def _may_start(self, tenant_id: str, now: float, contended: bool) -> float:
        """0.0: start now (its token taken); else seconds until it may (inf: until one of its RPCs ends)."""
        tokens: list[float] = []  # [tokens left, when counted]; only with a rate share
        if self.max_rate:
            got = self._tokens.get(tenant_id)
            if got is None:
                got = [self.burst, now]
                _put(self._tokens, tenant_id, got)
            tokens = got
            tokens[0] = min(self.burst, tokens[0] + (now - tokens[1]) * self.max_rate)
            tokens[1] = now
        if not contended:
            return 0.0
        if self.max_in_flight and self._in_flight.get(tenant_id, 0) >= self.max_in_flight:
            return float("inf")
        if self.max_rate:
            if tokens[0] < 1.0 - 1e-9:  # not a rounding error's worth short
                return (1.0 - tokens[0]) / self.max_rate
            tokens[0] -= 1.0
        return 0.0

    def _contended(self, tenant_id: str, now: float) -> bool:
        """Whether another tenant sent an RPC in the last ACTIVE_WINDOW seconds (give or take a sweep)."""
        if now - self._swept > ACTIVE_SWEEP:
            self._swept = now
            since = now - self.ACTIVE_WINDOW
            for stale in [t for t, seen in self._seen.items() if seen <= since]:
                del self._seen[stale]  # so the table holds the active tenants, not all ever seen
        return len(self._seen) > (1 if tenant_id in self._seen else 0)

    def _wake_in(self, tenant_id: str, delay: float) -> None:
        if tenant_id not in self._timers:
            self._timers[tenant_id] = asyncio.get_running_loop().call_later(delay, self._pump, tenant_id, True)

    def _pump(self, tenant_id: str, timer: bool = False) -> None:
        """Start the tenant's waiters, in order, while its share allows."""
        if timer:
            self._timers.pop(tenant_id, None)
        waiters = self._waiters.get(tenant_id)
        if not waiters:
            return
        now = self.clock()
        contended = self._contended(tenant_id, now)
        while waiters:
            if waiters[0].done():  # gave up meanwhile
                waiters.popleft()
                continue
            wait = self._may_start(tenant_id, now, contended)
            if wait:
                if wait < float("inf"):
                    self._wake_in(tenant_id, wait)
                return
            self._in_flight[tenant_id] = self._in_flight.get(tenant_id, 0) + 1
            waiters.popleft().set_result(None)
        del self._waiters[tenant_id]

    def _forget(self, tenant_id: str, slot: asyncio.Future) -> None:
        """A waiter that gave up leaves the queue, so the queue only ever holds live waiters (a
        tenant with none in flight and a queue of dead ones would otherwise never be admitted)."""
        waiters = self._waiters.get(tenant_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(slot)
            if not waiters:
                del self._waiters[tenant_id]

    def leave(self, tenant_id: str) -> None:
        n = self._in_flight[tenant_id] - 1
        if n:
            self._in_flight[tenant_id] = n
        else:
            del self._in_flight[tenant_id]
        if tenant_id in self._waiters:
            self._pump(tenant_id)

    def in_flight(self, tenant_id: str) -> int:
        return self._in_flight.get(tenant_id, 0)


class _KeyedMethods(WrapOnceInterceptor):
    """Wraps the methods that need a key (health and reflection pass untouched)."""

    def applies(self, method: str) -> bool:
        return required_role(method) is not None

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return self._wrap(handler)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError


class PeerInterceptor(_KeyedMethods):
    """Put before the auth interceptor: records the caller's host for AuthGuard."""

    def _wrap(self, handler):
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                _peer.set(peer_host(context.peer() or ""))
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def unary_stream(request, context):
                _peer.set(peer_host(context.peer() or ""))
                async for response in inner_stream(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


class TenantGateInterceptor(_KeyedMethods):
    """Put after the auth interceptor (it runs inside it, once the principal is set). Streams are
    not counted: a StreamAlerts reader holds no connection while it waits."""

    def __init__(self, gate: TenantGate) -> None:
        super().__init__()
        self.gate = gate

    def _wrap(self, handler):
        if not handler.unary_unary:
            return handler
        inner, gate = handler.unary_unary, self.gate

        async def unary_unary(request, context):
            tenant = current_principal().tenant_id
            await gate.enter(tenant)
            try:
                return await inner(request, context)
            finally:
                gate.leave(tenant)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
