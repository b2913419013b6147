"""Scheduled report digests: run by the alert evaluator's leader at each of its rounds, so one
replica at a time composes them; each is raised as an alert of kind report_digest whose dedup key
is (rule, period), so even two leaders for a moment write it once. Raising it queues its channel
deliveries in the same transaction (migrations/0010), and the channel sender delivers them at least
once, retried, with the outcome recorded, as for any alert."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from meterd.domain.alerts import AlertKind, Candidate
from meterd.domain.digests import PERIODS, Digest, dedup_key, due_period
from meterd.service.ports import AlertPort

log = logging.getLogger(__name__)

# (tenant, period name "day" | "week" | "month", an instant just after the period) → its digest.
Compose = Callable[[str, str, dt.datetime], Awaitable[Digest]]


class DigestScheduler:
    def __init__(self, store: AlertPort, compose: Compose) -> None:
        self.store = store
        self.compose = compose
        self.sent = 0

    async def run_due(self, now: dt.datetime, at: dt.datetime | None) -> int:
        """Raise every digest due at `now` not raised yet; at: the alert's created_at (None: the
        database's clock). Returns how many were raised here."""
        raised = 0
        for enabled in await self.store.enabled_rules(frozenset({AlertKind.REPORT_DIGEST})):
            tenant_id, rule = enabled.tenant_id, enabled.rule
            if rule.window is None:
                continue
            start, end = due_period(rule.window, now)
            key = dedup_key(rule.id, start)
            if await self.store.alert_exists(tenant_id, key):  # composing reads a period of usage: once
                continue
            try:
                digest = await self.compose(tenant_id, PERIODS[rule.window.kind], end)
            except Exception:
                log.exception("digest %s of tenant %s for %s could not be composed", rule.id, tenant_id, start)
                continue
            candidate = Candidate(
                rule=rule, dedup_key=key, cooldown_key="", subject="", provider="", model="", metric="cost_nanos",
                observed=float(digest.cost_nanos), threshold=0.0, window_start=start, window_end=end,
                message=digest.text,
            )  # fmt: skip
            raised += len(await self.store.raise_candidates(tenant_id, [candidate], at))
        self.sent += raised
        return raised
