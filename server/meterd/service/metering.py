"""RecordCall: cost the call, then store it once and settle its reservation or charge its limits,
group-committed with the records arriving at the same time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from meterd.domain.bounds import quote
from meterd.domain.calls import CallInput
from meterd.domain.errors import Internal, MeterError, culprit_error
from meterd.domain.keys import Principal
from meterd.domain.limits import Usage, matching
from meterd.domain.pricing import CostBreakdown, UsageAmounts
from meterd.domain.quota import Charge, LimitState, charges, limit_state
from meterd.domain.records import Recorded, RecordItem, RecordResult
from meterd.service.batching import Batcher, retry_rollbacks
from meterd.service.limit_cache import LimitCache
from meterd.service.ports import RecordPort
from meterd.service.prices import PriceBook

log = logging.getLogger(__name__)


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


def _tenant(item: RecordItem) -> str:
    return item.tenant_id


# Records per transaction at most: a whole RecordCalls request (its limit) fits in one.
MAX_BATCH = 1000


class MeteringService:
    def __init__(
        self,
        store: RecordPort,
        limits: LimitCache,
        prices: PriceBook,
        *,
        clock: Callable[[], dt.datetime] | None,
        batch_workers: int = 4,
        batch_timeout: float | None = None,
        on_recorded: Callable[[str, CallInput, RecordResult], None] | None = None,
    ) -> None:
        self.on_recorded = on_recorded  # e.g. the business metrics (by provider and model)
        self.store = store
        self.limits = limits
        self.prices = prices
        self.clock = clock
        self.batcher: Batcher[RecordItem, Recorded | MeterError] = Batcher(
            self._run_batch,
            workers=batch_workers,
            max_batch=MAX_BATCH,
            key=_tenant,
            timeout=batch_timeout,
            culprit_error=culprit_error,
        )

    async def _run_batch(self, items: list[RecordItem]) -> list[Recorded | MeterError]:
        return await retry_rollbacks(self.store.record_batch, items)

    async def cost(self, tenant_id: str, call: CallInput) -> tuple[CostBreakdown, str, str]:
        """(cost in parts, source, price id): the client's figure, else the price in force when the call happened."""
        if call.client_cost_nanos is not None:
            return CostBreakdown(other=call.client_cost_nanos), "client", ""
        at = call.occurred_at or (self.clock() if self.clock else dt.datetime.now(dt.UTC))
        amounts = UsageAmounts(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_read_tokens=call.cached_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            requests=call.requests,
            units=call.units,
        )
        parts, price = await self.prices.cost(
            tenant_id, call.dims.provider, call.dims.model, at, amounts, call.service_tier
        )
        return (parts, "unpriced", "") if price is None else (parts, "catalog", price.price_id)

    async def record(self, principal: Principal, call: CallInput) -> RecordOutcome:
        outcome = (await self.record_many(principal, [call]))[0]
        if isinstance(outcome, MeterError):
            raise outcome
        return outcome

    async def record_many(self, principal: Principal, calls: list[CallInput]) -> list[RecordOutcome | MeterError]:
        """Record calls of one principal, queued together so they share group-commit batches; one
        answer per call, in order (a call's own error, such as ALREADY_EXISTS, is its answer)."""
        tenant = principal.tenant_id
        limits = await self.limits.get(tenant)
        by_id = {limit.id: limit for limit in limits}
        at = self.clock() if self.clock else None
        items = []
        for call in calls:
            d = call.dims
            matched = matching(limits, d.subject, d.provider, d.model, d.operation, d.labels)
            parts, source, price_id = await self.cost(tenant, call)
            cost = parts.total
            actual = actual_usage(call, cost)
            items.append(
                RecordItem(
                    tenant_id=tenant,
                    api_key_id=principal.key_id,
                    call=call,
                    cost_nanos=cost,
                    cost_parts=parts,
                    cost_source=source,
                    price_id=price_id,
                    actual=actual,
                    charges=charges(matched, d.subject, principal.key_id, actual),
                    limits=by_id,
                    at=at,
                )
            )
        out: list[RecordOutcome | MeterError] = []
        answers = await self.batcher.submit_many(items, return_exceptions=True)
        for call, recorded in zip(calls, answers, strict=True):
            if isinstance(recorded, BaseException) and not isinstance(recorded, MeterError):
                recorded = server_fault(call, recorded)
            if isinstance(recorded, MeterError):
                out.append(recorded)
                continue
            when = call.occurred_at or recorded.result.recorded_at
            states = [
                limit_state(Charge(c.limit, c.partition, c.amount), c.reading, when, denied=False)
                for c in recorded.counters
            ]
            out.append(RecordOutcome(recorded.result, recorded.reservation_settled, states))
            if self.on_recorded is not None:
                self.on_recorded(tenant, call, recorded.result)
        return out


def server_fault(call: CallInput, exc: BaseException) -> Internal:
    """The answer of a call the batch's bisection isolated on an unexpected error (a server bug, not
    its values): INTERNAL for it alone, logged with the traceback. The calls that shared its batch
    were committed without it, so raising here would answer a whole RecordCalls INTERNAL and invite a
    retry of calls already recorded."""
    log.error("recording call %s failed on an unexpected error", quote(call.call_id), exc_info=exc)
    return Internal(
        f"the server failed to record this call ({type(exc).__name__}; see the server log); it was not "
        "recorded and the other calls were: retrying it with the same call_id is safe"
    )
