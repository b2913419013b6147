"""RecordCall: cost the call, store it once, and settle its reservation or charge its limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from meterd.domain.calls import CallInput
from meterd.domain.keys import Principal
from meterd.domain.limits import Usage, matching
from meterd.domain.pricing import UsageAmounts, cost_nanos
from meterd.domain.quota import Charge, LimitState, charges, limit_state
from meterd.service.limit_cache import LimitCache
from meterd.service.prices import PriceBook
from meterd.store.calls import CallStore, RecordResult
from meterd.store.db import Database
from meterd.store.quota import Applied, QuotaStore


@dataclasses.dataclass(frozen=True)
class RecordOutcome:
    result: RecordResult
    reservation_settled: bool
    states: list[LimitState]


def actual_usage(call: CallInput, cost: int) -> Usage:
    return Usage(
        requests=call.requests,
        input_tokens=call.input_tokens + call.cached_read_tokens + call.cache_write_tokens,
        output_tokens=call.output_tokens,
        units=call.units,
        cost_nanos=cost,
        failed=0 if call.success else 1,
    )


class MeteringService:
    def __init__(
        self,
        db: Database,
        calls: CallStore,
        quota: QuotaStore,
        limits: LimitCache,
        prices: PriceBook,
        *,
        clock: Callable[[], dt.datetime] | None,
    ) -> None:
        self.db = db
        self.calls = calls
        self.quota = quota
        self.limits = limits
        self.prices = prices
        self.clock = clock

    async def cost(self, tenant_id: str, call: CallInput) -> tuple[int, str, str]:
        """(cost nanos, source, price id): the client's figure, else the price in force when the call happened."""
        if call.client_cost_nanos is not None:
            return call.client_cost_nanos, "client", ""
        at = call.occurred_at or (self.clock() if self.clock else dt.datetime.now(dt.UTC))
        price = await self.prices.lookup(tenant_id, call.dims.provider, call.dims.model, at)
        if price is None:
            return 0, "unpriced", ""
        amounts = UsageAmounts(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_read_tokens=call.cached_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            requests=call.requests,
            units=call.units,
        )
        return cost_nanos(price, amounts), "catalog", price.price_id

    async def record(self, principal: Principal, call: CallInput) -> RecordOutcome:
        tenant = principal.tenant_id
        d = call.dims
        matched = matching(await self.limits.get(tenant), d.subject, d.provider, d.model, d.operation, d.labels)
        cost, source, price_id = await self.cost(tenant, call)
        actual = actual_usage(call, cost)
        at = call.occurred_at or (self.clock() if self.clock else None)
        async with self.db.transaction() as conn:
            claim = await self.calls.claim(conn, tenant, call, at)
            if claim is None:
                return RecordOutcome(await self.calls.first_answer(conn, tenant, call), False, [])
            applied = await self.quota.apply_usage(
                conn,
                tenant_id=tenant,
                at=at,
                reservation_id=call.reservation_id,
                call_id=call.call_id,
                actual=actual,
                use_estimate=not call.usage_given,
                end_state="settled",
                charges=charges(matched, d.subject, principal.key_id, actual),
            )
            stored = call
            if applied.settled and not call.usage_given:
                # No figures: the call is charged (and shown) as what was reserved for it.
                stored, cost = _as_estimated(call, applied), applied.reserved_cost_nanos
            await self.calls.insert(conn, tenant, principal.key_id, stored, claim, cost, source, price_id)
        result = RecordResult(call.call_id, False, cost, source, price_id, claim.recorded_at)
        return RecordOutcome(result, applied.settled, self._states(matched, applied, actual, claim.occurred_at))

    def _states(self, matched, applied: Applied, actual: Usage, at: dt.datetime) -> list[LimitState]:
        by_id = {limit.id: limit for limit in matched}
        states = []
        for counter in applied.counters:
            limit = by_id.get(counter.limit_id)
            if limit is None:  # a reserved limit that no longer matches or was deleted
                continue
            charge = Charge(limit, counter.partition, actual.amount_for(limit.metric))
            states.append(limit_state(charge, counter.reading, at, denied=False))
        return states


def _as_estimated(call: CallInput, applied: Applied) -> CallInput:
    estimate = applied.estimate or {}
    return dataclasses.replace(
        call,
        input_tokens=estimate.get("input_tokens", 0),
        output_tokens=estimate.get("max_output_tokens", 0),
        cached_read_tokens=estimate.get("cached_read_tokens", 0),
        requests=estimate.get("requests", 1),
        units=estimate.get("units", 0),
    )
