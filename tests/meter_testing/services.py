"""Services wired to the in-memory ports (meterd.service.fakes), for tests/service."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

from meter_testing.clock import FakeClock
from meterd.domain.calls import CallInput, Dimensions
from meterd.domain.keys import Principal
from meterd.domain.limits import Limit, Selector, partition_key, validate_limit
from meterd.domain.pricing import Price
from meterd.domain.windows import window_start
from meterd.service.fakes import FakeLimitStore, FakeQuotaStore, FakeRecordStore, FakeState
from meterd.service.fakes_control import FakePriceStore
from meterd.service.limit_cache import LimitCache
from meterd.service.metering import MeteringService
from meterd.service.prices import PriceBook
from meterd.service.quota import QuotaService

T0 = dt.datetime(2031, 5, 6, 10, 0, 0, tzinfo=dt.UTC)  # a fixed instant: no test depends on today
TENANT = "t1"
PRINCIPAL = Principal(TENANT, "k1", frozenset({"admin"}))
DIMS = Dimensions("user:1", "openai", "gpt-4.1", "chat", {})
# $2 per million input tokens, $8 per million output tokens.
PRICE = Price("openai", "gpt-4.1", T0 - dt.timedelta(days=30), input_per_mtok=2_000_000_000,
              output_per_mtok=8_000_000_000, cached_read_per_mtok=0, cache_write_per_mtok=0, per_request=0,
              per_unit=0)  # fmt: skip


def limit(id: str, metric: str, max: int, *, window: str = "minute", action: str = "deny", partition: str = "",
          **selector) -> Limit:  # fmt: skip
    return validate_limit(id=id, metric=metric, window_kind=window, max=max, action=action, partition=partition,
                          selector=Selector(**selector))  # fmt: skip


def call(call_id: str, *, reservation_id: str = "", dims: Dimensions = DIMS, usage_given: bool = True,
         input_tokens: int = 100, output_tokens: int = 10, success: bool = True, **over) -> CallInput:  # fmt: skip
    base = CallInput(
        call_id=call_id, reservation_id=reservation_id, dims=dims, usage_given=usage_given,
        input_tokens=input_tokens, output_tokens=output_tokens, cached_read_tokens=0, cache_write_tokens=0,
        reasoning_tokens=0, requests=1, units=0, latency_us=1000, ttft_us=None, retry_count=0, success=success,
        error_code="", error_message="", occurred_at=None, client_cost_nanos=None, metadata={},
    )  # fmt: skip
    return dataclasses.replace(base, **over)


@dataclasses.dataclass
class Services:
    clock: FakeClock
    state: FakeState
    limits: FakeLimitStore
    prices: FakePriceStore
    cache: LimitCache
    quota: QuotaService
    metering: MeteringService

    async def set_limits(self, *limits: Limit) -> None:
        for lim in limits:
            await self.limits.set(TENANT, lim)
        self.cache.invalidate(TENANT)

    def preset(self, lim: Limit, used: int, subject: str = "user:1") -> None:
        """Put `used` on the limit's counter of the current window (as earlier calls would have)."""
        key = (TENANT, lim.id, lim.generation, partition_key(lim, subject, PRINCIPAL.key_id),
               window_start(lim.window, self.clock.now))  # fmt: skip
        self.state.counter(key).used = used

    def counter(self, limit_id: str) -> tuple[int, int]:
        """(used, reserved) summed over the limit's counters."""
        rows = [c for k, c in self.state.counters.items() if k[1] == limit_id]
        return sum(c.used for c in rows), sum(c.reserved for c in rows)


@contextlib.asynccontextmanager
async def fake_services() -> AsyncIterator[Services]:
    clock = FakeClock(T0)
    state = FakeState(clock)
    limits = FakeLimitStore(clock)
    prices = FakePriceStore(clock)
    await prices.add_versions(TENANT, [PRICE])
    cache = LimitCache(limits, conninfo="")  # never listens: invalidated by hand
    book = PriceBook(prices)
    quota = QuotaService(FakeQuotaStore(state), cache, book, clock=clock, max_ttl=dt.timedelta(hours=1),
                         batch_workers=1)  # fmt: skip
    metering = MeteringService(FakeRecordStore(state), cache, book, clock=clock, batch_workers=1)
    try:
        yield Services(clock, state, limits, prices, cache, quota, metering)
    finally:
        await quota.batcher.close()
        await metering.batcher.close()
