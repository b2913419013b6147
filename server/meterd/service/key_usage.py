"""When each API key was last used, so stale keys can be found and revoked (ListApiKeys), at the cost
of a dict assignment per RPC: the times are written in one statement every `interval` seconds for the
keys used meanwhile, so each key costs at most one row update per interval and process."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)


class UsedKeysStore(Protocol):
    async def mark_used(self, used: dict[str, dt.datetime]) -> None: ...


class LastUsed:
    def __init__(self, store: UsedKeysStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._pending: dict[str, float] = {}

    def touch(self, key_id: str) -> None:
        self._pending[key_id] = time.time()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await self.store.mark_used({k: dt.datetime.fromtimestamp(t, dt.UTC) for k, t in pending.items()})
        except Exception as exc:  # noqa: BLE001 - the database may be down: keep them for the next round
            log.warning("recording when %d API key(s) were last used failed: %s", len(pending), exc)
            for key_id, at in pending.items():
                if at > self._pending.get(key_id, 0.0):
                    self._pending[key_id] = at

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(self.interval, 0.05))
            await self.flush()
