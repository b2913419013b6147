"""Limits cached in memory per tenant, dropped when any replica changes them (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import logging
import time

from meterd.domain.limits import Limit
from meterd.service.ports import LimitPort
from meterd.store.notify import listening

log = logging.getLogger(__name__)
CHANNEL = "meter_limits"  # notified by the limits table's trigger with the tenant id


class LimitCache:
    def __init__(self, store: LimitPort, conninfo: str, *, max_age: float = 60.0) -> None:
        self.store = store
        self.conninfo = conninfo
        # A safety net only: a notification normally invalidates within milliseconds.
        self.max_age = max_age
        self._entries: dict[str, tuple[list[Limit], float]] = {}
        self._loading: dict[str, asyncio.Future[list[Limit]]] = {}
        self.listening = asyncio.Event()

    async def get(self, tenant_id: str) -> list[Limit]:
        entry = self._entries.get(tenant_id)
        if entry and time.monotonic() - entry[1] < self.max_age:
            return entry[0]
        if tenant_id in self._loading:  # one load per tenant however many requests wait for it
            return await asyncio.shield(self._loading[tenant_id])
        future = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            started = time.monotonic()
            limits = [stored.limit for stored in await self.store.list(tenant_id)]
            if self._loading.get(tenant_id) is future:  # not invalidated while loading
                self._entries[tenant_id] = (limits, started)
            future.set_result(limits)
            return limits
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            if self._loading.get(tenant_id) is future:
                del self._loading[tenant_id]

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._entries.clear()
            self._loading.clear()
        else:
            self._entries.pop(tenant_id, None)
            self._loading.pop(tenant_id, None)

    async def listen(self) -> None:
        """Runs until cancelled; reconnects after database restarts (dropping everything cached,
        since notifications sent while disconnected are lost)."""
        delay = 0.5
        while True:
            try:
                async with listening(self.conninfo, CHANNEL) as notifications:
                    self.invalidate()
                    self.listening.set()
                    delay = 0.5
                    async for tenant_id in notifications:
                        self.invalidate(tenant_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep listening whatever happened
                self.listening.clear()
                self.invalidate()
                log.warning("limit change listener lost its connection (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
