"""In-memory implementations of the ports (service/ports.py), for fast tests of the services.

Shipped with the server (like gubernator's mock) so that any test, ours or an embedder's, can run
QuotaService, MeteringService and the limit admin without PostgreSQL (keys, prices, alerts and
deliveries: service/fakes_control.py). They
decide with the same domain functions the store uses (domain.quota.blocks, domain.records.plan_record),
and tests/integration/test_port_contract.py runs the same port-level cases against them and against
the real stores, so they cannot drift. Not safe for concurrency across processes, obviously; within
one event loop every method runs without awaiting, so each call is atomic like a transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from meterd.domain.calls import Dimensions
from meterd.domain.clock import utc_now
from meterd.domain.errors import AlreadyExists, MeterError, NotFound
from meterd.domain.limits import Limit, LimitAction, StoredLimit, Usage
from meterd.domain.quota import (
    CheckItem,
    CheckOutcome,
    CounterReading,
    Estimate,
    Extended,
    ReservationState,
    ReservedCounter,
    blocks,
    denies,
    limit_state,
)
from meterd.domain.records import (
    CounterKey,
    EndedReservation,
    HeldCharge,
    Recorded,
    RecordedCounter,
    RecordItem,
    RecordResult,
    counter_deltas,
    plan_record,
)
from meterd.domain.windows import WindowKind, sliding_used, window_start

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass
class FakeReservation:
    tenant_id: str
    id: str
    dims: Dimensions
    state: ReservationState
    estimate_json: dict
    charges: list[HeldCharge]
    cost_nanos: int
    expires_at: dt.datetime


@dataclasses.dataclass
class _Counter:
    used: int = 0
    reserved: int = 0


class FakeState:
    """What the fakes share, as the stores share one database: counters and reservations."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.counters: dict[CounterKey, _Counter] = {}
        self.reservations: dict[tuple[str, str], FakeReservation] = {}

    def counter(self, key: CounterKey) -> _Counter:
        return self.counters.setdefault(key, _Counter())

    def reading(self, key: CounterKey, sliding_seconds: int | None = None) -> CounterReading:
        c = self.counters.get(key, _Counter())
        prev = _Counter()
        if sliding_seconds is not None:
            prev = self.counters.get((*key[:4], key[4] - dt.timedelta(seconds=sliding_seconds)), _Counter())
        return CounterReading(key[4], c.used, c.reserved, prev.used, prev.reserved)


def _sliding(limit: Limit) -> int | None:
    return limit.window.seconds if limit.window.kind is WindowKind.SLIDING else None


class FakeQuotaStore:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def check(self, items: list[CheckItem], at: dt.datetime | None) -> list[CheckOutcome]:
        now = at or self.state.clock()
        out = []
        for item in items:
            keys = [
                (item.tenant_id, c.limit.id, c.limit.generation, c.partition, window_start(c.limit.window, now))
                for c in item.charges
            ]
            existing = (
                item.reserve
                and item.client_reservation_id
                and (item.tenant_id, item.reservation_id) in (self.state.reservations)
            )
            allowed = existing or not any(
                blocks(c, limit_state(c, self.state.reading(k, _sliding(c.limit)), now, denied=False))
                for c, k in zip(item.charges, keys, strict=True)
            )
            expires = None
            if existing:
                expires = self.state.reservations[(item.tenant_id, item.reservation_id)].expires_at
            elif allowed and item.reserve:
                expires = now + item.ttl
                for c, k in zip(item.charges, keys, strict=True):
                    self.state.counter(k).reserved += c.amount
                self.state.reservations[(item.tenant_id, item.reservation_id)] = FakeReservation(
                    item.tenant_id, item.reservation_id, item.dims, ReservationState.ACTIVE, item.estimate.to_json(),
                    [HeldCharge(c.limit.id, c.limit.generation, c.partition, k[4], c.limit.metric, c.amount)
                     for c, k in zip(item.charges, keys, strict=True)],
                    item.cost_nanos, expires,
                )  # fmt: skip
            readings = [self.state.reading(k, _sliding(c.limit)) for c, k in zip(item.charges, keys, strict=True)]
            # Like meter_check: the previous bucket as one figure (its used + reserved).
            readings = [
                dataclasses.replace(r, prev_used=r.prev_used + r.prev_reserved, prev_reserved=0) for r in readings
            ]
            out.append(CheckOutcome(allowed, bool(existing), now, expires, readings))
        return out

    async def extend(
        self,
        *,
        tenant_id: str,
        at: dt.datetime | None,
        reservation_id: str,
        amounts: Usage,
        ttl: dt.timedelta,
        limits: list[Limit],
    ) -> Extended:
        now = at or self.state.clock()
        r = self.state.reservations.get((tenant_id, reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return Extended(False, False, None, 0, [])
        by_id = {limit.id: limit for limit in limits}
        deny = {limit.id for limit in limits if limit.action is LimitAction.DENY}
        ok = True
        for held in r.charges:
            amount = amounts.amount_for(held.metric)
            limit = by_id.get(held.limit_id)
            if held.limit_id in deny and amount > 0 and limit is not None:
                reading = self.state.reading(held.key(tenant_id), _sliding(limit))
                used = reading.used
                if limit.window.kind is WindowKind.SLIDING:
                    used = sliding_used(used, reading.prev_used + reading.prev_reserved, limit.window, now)
                # meter_extend denies only a positive amount (an extension of nothing always fits).
                ok = ok and not denies(used + reading.reserved, amount, limit.max)
        if ok:
            grown = []
            for held in r.charges:
                amount = amounts.amount_for(held.metric)
                self.state.counter(held.key(tenant_id)).reserved += amount
                grown.append(dataclasses.replace(held, amount=held.amount + amount))
            r.charges = grown
            r.expires_at = max(r.expires_at, now + ttl)
            r.cost_nanos += amounts.cost_nanos
        counters = [
            ReservedCounter(held.limit_id, held.partition,
                            self.state.reading(held.key(tenant_id), _sliding(by_id[held.limit_id])
                                               if held.limit_id in by_id else None))
            for held in r.charges
        ]  # fmt: skip
        return Extended(True, ok, r.expires_at, r.cost_nanos, counters)

    def _give_back(self, r: FakeReservation, state: ReservationState) -> None:
        r.state = state
        for held in r.charges:
            self.state.counter(held.key(r.tenant_id)).reserved -= held.amount

    async def release(self, tenant_id: str, reservation_id: str, at: dt.datetime | None) -> bool:
        r = self.state.reservations.get((tenant_id, reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return False
        self._give_back(r, ReservationState.RELEASED)
        return True

    async def expire(self, at: dt.datetime | None, batch: int = 1000) -> int:
        now = at or self.state.clock()
        due = [
            r for r in self.state.reservations.values() if r.state is ReservationState.ACTIVE and r.expires_at <= now
        ]
        for r in sorted(due, key=lambda r: r.expires_at)[:batch]:
            self._give_back(r, ReservationState.EXPIRED)
        return min(len(due), batch)

    async def reservation_dims(self, tenant_id: str, reservation_id: str) -> Dimensions | None:
        r = self.state.reservations.get((tenant_id, reservation_id))
        return r.dims if r else None

    async def reservation_state(self, tenant_id: str, reservation_id: str) -> ReservationState | None:
        r = self.state.reservations.get((tenant_id, reservation_id))
        return r.state if r else None


@dataclasses.dataclass
class _FirstAnswer:
    fingerprint: bytes
    result: RecordResult


class FakeRecordStore:
    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.calls: dict[tuple[str, str], _FirstAnswer] = {}
        self.stored: list[tuple[str, object]] = []  # (tenant, CallInput as stored), in order

    async def record_batch(self, items: list[RecordItem]) -> list[Recorded | MeterError]:
        out: list[Recorded | MeterError] = []
        for item in items:
            key = (item.tenant_id, item.call.call_id)
            first = self.calls.get(key)
            if first is not None:
                if first.fingerprint != item.call.fingerprint():
                    out.append(
                        AlreadyExists(f"call_id {item.call.call_id!r} was already recorded with different content")
                    )
                else:
                    out.append(Recorded(dataclasses.replace(first.result, duplicate=True), False, []))
                continue
            recorded_at = self.state.clock()
            occurred_at = item.call.occurred_at or item.at or recorded_at
            deltas = counter_deltas()
            plan = plan_record(item, occurred_at, self._end(item), deltas)
            for k, d in deltas.items():
                counter = self.state.counter(k)
                counter.used += d.used
                counter.reserved += d.reserved
            result = RecordResult(item.call.call_id, False, plan.cost_nanos, item.cost_source, item.price_id,
                                  recorded_at, plan.cost_parts)  # fmt: skip
            self.calls[key] = _FirstAnswer(item.call.fingerprint(), result)
            self.stored.append((item.tenant_id, plan.stored))
            counters = [
                RecordedCounter(c.limit, c.partition, c.amount, self.state.reading(c.key)) for c in plan.charged
            ]
            out.append(Recorded(result, plan.settled, counters))
        return out

    def _end(self, item: RecordItem) -> EndedReservation | None:
        if not item.call.reservation_id:
            return None
        r = self.state.reservations.get((item.tenant_id, item.call.reservation_id))
        if r is None or r.state is not ReservationState.ACTIVE:
            return None
        d = item.call.dims
        same = (r.dims.subject, r.dims.provider, r.dims.model, r.dims.operation) == (
            d.subject, d.provider, d.model, d.operation,
        )  # fmt: skip
        r.state = ReservationState.SETTLED if same else ReservationState.RELEASED
        estimate = Estimate(**{k: v for k, v in r.estimate_json.items() if k in Estimate.__dataclass_fields__})
        return EndedReservation(item.call.call_id, same, estimate, tuple(r.charges), r.cost_nanos)


_COUNTED = ("metric", "window", "partition")  # changing these starts new counters


class FakeLimitStore:
    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.limits: dict[tuple[str, str], StoredLimit] = {}

    async def set(self, tenant_id: str, limit: Limit) -> tuple[StoredLimit, bool]:
        now = self.clock()
        old = self.limits.get((tenant_id, limit.id))
        if old is None:
            stored = StoredLimit(dataclasses.replace(limit, generation=1), now, now)
        else:
            changed = any(getattr(old.limit, f) != getattr(limit, f) for f in _COUNTED)
            generation = old.limit.generation + (1 if changed else 0)
            stored = StoredLimit(dataclasses.replace(limit, generation=generation), old.created_at, now)
        self.limits[(tenant_id, limit.id)] = stored
        return stored, old is None

    async def get(self, tenant_id: str, limit_id: str) -> StoredLimit:
        if (stored := self.limits.get((tenant_id, limit_id))) is None:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")
        return stored

    async def list(self, tenant_id: str) -> list[StoredLimit]:
        return [s for (t, _), s in sorted(self.limits.items()) if t == tenant_id]

    async def delete(self, tenant_id: str, limit_id: str) -> None:
        if self.limits.pop((tenant_id, limit_id), None) is None:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")
