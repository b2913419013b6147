"""GetUsage's limit statuses (include_limits): the tenant's limits that the usage filter selects
(domain/limit_selection.py), each read from its counter and turned into a status by the same rule
CheckQuota and RecordCall use (domain.quota.limit_state, run-out from domain.forecast)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from meterd.domain.limit_selection import reported
from meterd.domain.limits import Limit
from meterd.domain.quota import Charge, LimitState, limit_state
from meterd.domain.usage import UsageFilter
from meterd.service.ports import LimitCounterPort


class LimitStatusReader:
    def __init__(self, limits: Callable[[str], Awaitable[list[Limit]]], counters: LimitCounterPort) -> None:
        self.limits = limits  # the tenant's limits (the quota path's LimitCache.get)
        self.counters = counters

    async def statuses(self, tenant_id: str, f: UsageFilter, at: dt.datetime) -> list[LimitState]:
        wanted = reported(await self.limits(tenant_id), f)
        if not wanted:
            return []
        readings = await self.counters.readings(tenant_id, wanted, at)
        return [
            limit_state(Charge(limit, partition, 0), reading, at, denied=False)
            for (limit, partition), reading in zip(wanted, readings, strict=True)
        ]
