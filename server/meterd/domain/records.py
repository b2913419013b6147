"""The record path's accounting, no I/O: what a recorded call adds to its counters and rollups,
and how it settles (or gives back) the reservation it names.

The store runs it inside the batch's transaction (it needs the claims and the locked reservations
first), but every decision is here, so the fake store of tests/service decides the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
from collections import defaultdict
from collections.abc import Iterable

from meterd.domain import histogram
from meterd.domain.calls import CallInput
from meterd.domain.limits import Limit, Metric, Usage
from meterd.domain.pricing import CostBreakdown
from meterd.domain.quota import Charge, CounterReading, Estimate
from meterd.domain.windows import window_start

CounterKey = tuple[str, str, int, str, dt.datetime]  # tenant, limit, generation, partition, window start
HourlyKey = tuple[str, dt.datetime, str, str, str, str]  # tenant, hour, subject, provider, model, operation


@dataclasses.dataclass(frozen=True)
class RecordResult:
    call_id: str
    duplicate: bool
    cost_nanos: int
    cost_source: str
    price_id: str
    recorded_at: dt.datetime
    cost_parts: CostBreakdown | None = None  # None: a first answer stored before breakdowns existed


@dataclasses.dataclass(frozen=True)
class RecordItem:
    tenant_id: str
    api_key_id: str
    call: CallInput
    cost_nanos: int
    cost_parts: CostBreakdown  # sums to cost_nanos
    cost_source: str
    price_id: str
    actual: Usage
    charges: list[Charge]  # the matched limits, charged when no live reservation is settled
    limits: dict[str, Limit]  # every limit of the tenant, to describe a settled reservation's counters
    at: dt.datetime | None  # injected clock (tests); None: the database's


@dataclasses.dataclass(frozen=True)
class RecordedCounter:
    limit: Limit
    partition: str
    amount: int
    reading: CounterReading


@dataclasses.dataclass(frozen=True)
class Recorded:
    result: RecordResult
    reservation_settled: bool
    counters: list[RecordedCounter]


# ---- settlement -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HeldCharge:
    """One counter a reservation holds an amount on (its window is the reservation's)."""

    limit_id: str
    generation: int
    partition: str
    window_start: dt.datetime
    metric: Metric
    amount: int

    def key(self, tenant_id: str) -> CounterKey:
        return tenant_id, self.limit_id, self.generation, self.partition, self.window_start


@dataclasses.dataclass(frozen=True)
class EndedReservation:
    """A live reservation a record batch ended: settled by the call of its own subject, provider,
    model and operation that named it, or released (named by a call of other dimensions)."""

    named_by: str  # the call_id that ended it (the first of the batch to name it)
    settled: bool  # False: released, its hold given back
    estimate: Estimate
    charges: tuple[HeldCharge, ...]
    cost_nanos: int


@dataclasses.dataclass(slots=True)
class CounterDelta:
    used: int = 0
    reserved: int = 0


CounterDeltas = defaultdict[CounterKey, CounterDelta]


def counter_deltas() -> CounterDeltas:
    return defaultdict(CounterDelta)


# Not frozen: built per charge of every recorded call, and frozen dataclasses construct slower.
@dataclasses.dataclass(slots=True)
class PlannedCharge:
    limit: Limit
    partition: str
    amount: int
    key: CounterKey


@dataclasses.dataclass(slots=True)
class RecordPlan:
    """What one new call does: the call as stored, its cost, and the counters it charges."""

    settled: bool  # it settled its reservation
    stored: CallInput
    cost_nanos: int
    charged: list[PlannedCharge]
    cost_parts: CostBreakdown


def plan_record(
    item: RecordItem,
    occurred_at: dt.datetime,
    reservation: EndedReservation | None,
    deltas: CounterDeltas,
) -> RecordPlan:
    """The accounting of one new call, its counter deltas added to `deltas`.

    With no reservation (or one another call of the batch ended first) the call charges its matched
    limits in the windows of `occurred_at`. A released reservation gives its hold back and the call
    is charged like a plain one, so no subject's counters pay for another's call. A settled one
    swaps its estimates for the call's figures on the very counters it held, or, when the call
    gave no figures, charges (and stores) the call as what was reserved."""
    if reservation is not None and reservation.named_by != item.call.call_id:
        reservation = None
    if reservation is not None and not reservation.settled:
        for held in reservation.charges:
            deltas[held.key(item.tenant_id)].reserved -= held.amount
        reservation = None
    charged: list[PlannedCharge] = []
    if reservation is None:
        for charge in item.charges:
            key = (item.tenant_id, charge.limit.id, charge.limit.generation, charge.partition,
                   window_start(charge.limit.window, occurred_at))  # fmt: skip
            deltas[key].used += charge.amount
            charged.append(PlannedCharge(charge.limit, charge.partition, charge.amount, key))
        return RecordPlan(False, item.call, item.cost_nanos, charged, item.cost_parts)
    use_estimate = not item.call.usage_given
    for held in reservation.charges:
        key = held.key(item.tenant_id)
        amount = held.amount if use_estimate else item.actual.amount_for(held.metric)
        delta = deltas[key]
        delta.used += amount
        delta.reserved -= held.amount
        limit = item.limits.get(held.limit_id)
        if limit is not None:  # a limit deleted since the reservation is still settled, not reported
            charged.append(PlannedCharge(limit, held.partition, amount, key))
    if use_estimate:
        # No figures: the call is charged (and shown) as what was reserved for it.
        estimate = reservation.estimate
        stored = dataclasses.replace(
            item.call,
            input_tokens=estimate.input_tokens,
            output_tokens=estimate.max_output_tokens,
            cached_read_tokens=estimate.cached_read_tokens,
            requests=estimate.requests,
            units=estimate.units,
        )
        # The reserved cost is charged as it was: the breakdown shows it as `other`.
        cost = reservation.cost_nanos
        return RecordPlan(True, stored, cost, charged, CostBreakdown(other=cost))
    return RecordPlan(True, item.call, item.cost_nanos, charged, item.cost_parts)


# ---- rollups --------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class RollupSums:
    """A rollup row's summed figures (store/rollups.py maps them to columns, in this order) and its
    latency histogram, sparse: {"bucket": count}."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    units: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0
    latency_count: int = 0
    latency_sum_us: int = 0
    retry_count: int = 0
    # Cost parts, in domain.pricing.PARTS order.
    cost_input_nanos: int = 0
    cost_output_nanos: int = 0
    cost_cached_read_nanos: int = 0
    cost_cache_write_nanos: int = 0
    cost_requests_nanos: int = 0
    cost_units_nanos: int = 0
    cost_other_nanos: int = 0
    cache_savings_nanos: int = 0
    latency_hist: dict[str, int] = dataclasses.field(default_factory=dict)

    def figures(self) -> tuple[int, ...]:
        """In FIGURE_NAMES order (the rollup tables' column order)."""
        return _figures(self)

    def add(self, other: RollupSums) -> None:
        # Spelled out: this runs per rollup row of every record batch, and a loop of getattr/setattr
        # costs several times more.
        self.calls += other.calls
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_read_tokens += other.cached_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.requests += other.requests
        self.units += other.units
        self.cost_nanos += other.cost_nanos
        self.unpriced_calls += other.unpriced_calls
        self.latency_count += other.latency_count
        self.latency_sum_us += other.latency_sum_us
        self.retry_count += other.retry_count
        self.cost_input_nanos += other.cost_input_nanos
        self.cost_output_nanos += other.cost_output_nanos
        self.cost_cached_read_nanos += other.cost_cached_read_nanos
        self.cost_cache_write_nanos += other.cost_cache_write_nanos
        self.cost_requests_nanos += other.cost_requests_nanos
        self.cost_units_nanos += other.cost_units_nanos
        self.cost_other_nanos += other.cost_other_nanos
        self.cache_savings_nanos += other.cache_savings_nanos
        hist = self.latency_hist
        for bucket, n in other.latency_hist.items():
            hist[bucket] = hist.get(bucket, 0) + n

    def copy(self) -> RollupSums:
        # positional: the figures in field order, then the histogram (mypy cannot count a tuple[int, ...])
        return RollupSums(*_figures(self), dict(self.latency_hist))  # type: ignore[call-arg]

    def add_call(self, call: CallInput, cost_nanos: int, unpriced: bool, parts: CostBreakdown) -> None:
        self.calls += 1
        self.errors += 0 if call.success else 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cached_read_tokens += call.cached_read_tokens
        self.cache_write_tokens += call.cache_write_tokens
        self.reasoning_tokens += call.reasoning_tokens
        self.requests += call.requests
        self.units += call.units
        self.cost_nanos += cost_nanos
        self.unpriced_calls += 1 if unpriced else 0
        self.retry_count += call.retry_count
        self.cost_input_nanos += parts.input
        self.cost_output_nanos += parts.output
        self.cost_cached_read_nanos += parts.cached_read
        self.cost_cache_write_nanos += parts.cache_write
        self.cost_requests_nanos += parts.requests
        self.cost_units_nanos += parts.units
        self.cost_other_nanos += parts.other
        self.cache_savings_nanos += parts.cache_savings
        latency = call.latency_us
        if latency is not None:
            self.latency_count += 1
            self.latency_sum_us += latency
            b = str(histogram.bucket(latency))
            self.latency_hist[b] = self.latency_hist.get(b, 0) + 1


FIGURE_NAMES = tuple(f.name for f in dataclasses.fields(RollupSums) if f.name != "latency_hist")
_figures = operator.attrgetter(*FIGURE_NAMES)


def rollup_deltas(recorded: Iterable[tuple[RecordItem, RecordPlan, dt.datetime]]) -> dict[HourlyKey, RollupSums]:
    """Per (tenant, hour, subject, provider, model, operation): the new calls' sums, given each
    call's item, plan and occurred_at."""
    out: dict[HourlyKey, RollupSums] = {}
    for item, plan, occurred_at in recorded:
        d = plan.stored.dims
        hour = occurred_at.replace(minute=0, second=0, microsecond=0)
        key = (item.tenant_id, hour, d.subject, d.provider, d.model, d.operation)
        sums = out.get(key)
        if sums is None:
            sums = out[key] = RollupSums()
        sums.add_call(plan.stored, plan.cost_nanos, item.cost_source == "unpriced", plan.cost_parts)
    return out
