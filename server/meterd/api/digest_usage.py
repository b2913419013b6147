"""A scheduled digest's figures, read exactly as `meter report` reads them: console/report.build
over GetUsage, here answered in-process by this server's own servicer for the digest's tenant (no
API key, no network), then rendered short enough for a chat message (console/digest.py)."""

from __future__ import annotations

import datetime as dt

from meter import builders
from meterd.api.interceptor import acting_as
from meterd.api.meter import MeterServicer
from meterd.console import report
from meterd.console.digest import digest_text
from meterd.domain.digests import Digest
from meterd.domain.keys import Principal


class _TenantUsage:
    """The console client's `usage(**kwargs)` for one tenant, without the network."""

    def __init__(self, servicer: MeterServicer, tenant_id: str) -> None:
        self.servicer = servicer
        self.principal = Principal(tenant_id, "(digest)", frozenset({"read"}))

    async def usage(self, *, timeout: float | None = None, **kwargs):  # noqa: ASYNC109 - the console client's signature
        request = builders.usage_request(**kwargs)
        with acting_as(self.principal):
            return await self.servicer.GetUsage(request, None)


class DigestComposer:
    """service.digests.Compose: (tenant, period, an instant just after it) → the period's digest."""

    def __init__(self, servicer: MeterServicer) -> None:
        self.servicer = servicer

    async def __call__(self, tenant_id: str, period: str, after: dt.datetime) -> Digest:
        rep = await report.build(_TenantUsage(self.servicer, tenant_id), period, after)
        return Digest(digest_text(rep), rep.totals.cost_nanos)
