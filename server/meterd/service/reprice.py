"""RepriceCalls: recompute the cost of recorded calls with the prices now in force for their
occurred_at, and correct everything that summed the old cost (first answers, the subject, model,
label and error-code rollups, cost counters) in the same transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable

from meterd.domain.errors import InvalidArgument, RolledBack, Unavailable
from meterd.domain.limits import Limit, Metric, matching, partition_key
from meterd.domain.price_rules import CatalogProvider, PriceSet
from meterd.domain.pricing import CostBreakdown, Price, breakdown, choose
from meterd.domain.records import CounterKey, HourlyKey
from meterd.domain.repricing import LabelCallKey, NewCost, StoredCall
from meterd.domain.windows import window_start
from meterd.service.ports import LimitPort, PricePort, RepricePort, RepriceTransactionPort

log = logging.getLogger(__name__)

CHUNK = 10_000


@dataclasses.dataclass(frozen=True)
class RepriceResult:
    calls_examined: int = 0
    calls_changed: int = 0  # calls whose cost changed
    cost_delta_nanos: int = 0  # sum of new - old


class _Prices:
    """The same choice as PriceBook.lookup, over one snapshot: the tenant's own prices, then the catalog."""

    def __init__(self, own: list[Price], shared: list[Price], providers: tuple[CatalogProvider, ...] = ()) -> None:
        self.own = PriceSet(own, providers)
        self.shared = PriceSet(shared, providers)
        self._candidates: dict[tuple[str, str], tuple[list[Price], list[Price]]] = {}

    def lookup(self, provider: str, model: str, at: dt.datetime, service_tier: str = "") -> Price | None:
        candidates = self._candidates.get((provider, model))
        if candidates is None:
            candidates = self._candidates[(provider, model)] = (
                self.own.candidates(provider, model),
                self.shared.candidates(provider, model),
            )
        own, shared = candidates
        return choose(own, at, service_tier) or choose(shared, at, service_tier)


def _add(deltas: dict, key: tuple, change: tuple[int, ...]) -> None:
    before = deltas.get(key)
    deltas[key] = change if before is None else tuple(a + b for a, b in zip(before, change, strict=True))


class Repricer:
    def __init__(self, store: RepricePort, prices: PricePort, limits: LimitPort, *, chunk: int = CHUNK) -> None:
        self.store = store
        self.prices = prices
        self.limits = limits
        self.chunk = chunk

    async def reprice(
        self,
        tenant_id: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        *,
        provider: str = "",
        model: str = "",
        include_client_costs: bool = False,
        attempts: int = 3,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> RepriceResult:
        """Reprice the tenant's calls with occurred_at in [start, end) (optionally one provider / model).

        Client-supplied costs are kept (and not examined) unless include_client_costs. All or nothing:
        a failure leaves every call, rollup and counter as it was. progress(calls examined, None) is
        called after each chunk.
        """
        violations = []
        if start is None:
            violations.append(("start", "required"))
        if end is None:
            violations.append(("end", "required"))
        if start is not None and end is not None and start >= end:
            violations.append(("end", "must be after start"))
        if violations or start is None or end is None:  # (a missing start or end is in violations)
            raise InvalidArgument(violations)
        # Snapshots taken before the transaction (which holds its connection until the end).
        own, shared, providers = await self.prices.for_tenant(tenant_id)
        limits = [s.limit for s in await self.limits.list(tenant_id) if s.limit.metric is Metric.COST_NANOS]
        prices = _Prices(own, shared, providers)
        for attempt in range(1, attempts + 1):
            try:
                async with self.store.transaction(tenant_id) as tx:
                    return await self._run(tx, prices, limits, start, end, provider.strip().lower(), model.strip(),
                                           include_client_costs, progress)  # fmt: skip
            except RolledBack as exc:  # nothing was applied: running it again is exact
                log.warning("reprice rolled back (%s), attempt %d of %d", exc.sqlstate, attempt, attempts)
        raise Unavailable("the database kept rolling the reprice back; retry later")

    async def _run(
        self,
        tx: RepriceTransactionPort,
        prices: _Prices,
        cost_limits: list[Limit],
        start: dt.datetime,
        end: dt.datetime,
        provider: str,
        model: str,
        include_client_costs: bool,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> RepriceResult:
        tenant = tx.tenant_id
        by_id = {limit.id: limit for limit in cost_limits}
        counters: dict[CounterKey, int] = defaultdict(int)
        rollups: dict[HourlyKey, tuple[int, ...]] = {}
        by_labels: dict[LabelCallKey, tuple[int, ...]] = {}
        examined = changed = delta_total = 0
        after = None
        while True:
            calls = await tx.calls(start, end, provider=provider, model=model, include_client_costs=include_client_costs,
                                   after=after, limit=self.chunk)  # fmt: skip
            if not calls:
                break
            after = (calls[-1].occurred_at, calls[-1].call_id)
            examined += len(calls)
            updates = [n for n in (self._new_cost(prices, c) for c in calls) if n is not None]
            settled = await tx.settled_charges([n.call for n in updates if n.cost_nanos != n.call.cost_nanos])
            for n in updates:
                call, delta = n.call, n.cost_nanos - n.call.cost_nanos
                unpriced = (n.cost_source == "unpriced") - (call.cost_source == "unpriced")
                # Rollup rows of calls recorded before breakdowns existed hold zero parts.
                old_parts = (call.cost_parts or CostBreakdown()).as_tuple()
                change = (delta, unpriced, *(a - b for a, b in zip(n.cost_parts.as_tuple(), old_parts, strict=True)))
                if any(change):
                    hour = call.occurred_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
                    key = (tenant, hour, call.subject, call.provider, call.model, call.operation)
                    _add(rollups, key, change)
                    labels = tuple(sorted(call.labels.items()))
                    _add(by_labels, (hour, call.provider, call.model, call.operation, call.error_value, labels), change)
                if not delta:
                    continue
                changed += 1
                delta_total += delta
                for counter in self._counters(tenant, call, cost_limits, by_id, settled.get(call.call_id)):
                    counters[counter] += delta
            await tx.update_calls(updates)
            if progress is not None:
                progress(examined, None)
            if len(calls) < self.chunk:
                break
        # Rows every other writer also locks go last, each kind in one key-ordered statement.
        await tx.add_to_counters(counters)
        await tx.add_to_rollups(rollups)
        await tx.add_to_label_rollups(by_labels)
        return RepriceResult(examined, changed, delta_total)

    @staticmethod
    def _new_cost(prices: _Prices, call: StoredCall) -> NewCost | None:
        """The call's cost at the price in force at its occurred_at; None when nothing changes."""
        price = prices.lookup(call.provider, call.model, call.occurred_at, call.service_tier)
        if price is None:
            new = NewCost(call, 0, "unpriced", "")
        else:
            parts = breakdown(price, call.usage)
            new = NewCost(call, parts.total, "catalog", price.price_id, parts)
        if (new.cost_nanos, new.cost_source, new.price_id, new.cost_parts) == (
            call.cost_nanos, call.cost_source, call.price_id, call.cost_parts
        ):  # fmt: skip
            return None
        return new

    @staticmethod
    def _counters(tenant: str, call: StoredCall, cost_limits: list[Limit], by_id: dict[str, Limit], settled):
        """The cost counters the call was charged to, for the limits' current generations: the
        reservation's when the call settled one, else those of the matching limits at occurred_at."""
        if settled is not None:
            for c in settled:
                limit = by_id.get(c.limit_id)
                if c.metric == Metric.COST_NANOS.value and limit is not None and limit.generation == c.generation:
                    yield (tenant, c.limit_id, c.generation, c.partition, c.window_start)
            return
        for limit in matching(cost_limits, call.subject, call.provider, call.model, call.operation, call.labels):
            yield (
                tenant,
                limit.id,
                limit.generation,
                partition_key(limit, call.subject, call.api_key_id),
                window_start(limit.window, call.occurred_at),
            )
