"""A short-lived cache of GetUsage answers, per API key, in front of the client.

Dashboards are reloaded and several pages (overview, report, limits) ask the same questions; an
answer a few seconds old is as good as a new one, and over millions of calls a subject-grouped
GetUsage costs hundreds of milliseconds. Range ends are floored to the minute by the pages, so a
reload within the same minute asks the same request. Identical requests in flight are shared
(one RPC), failures are not cached."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict

from meter import builders

# `timeout` here is the gRPC deadline passed through, not a local wait.
# ruff: noqa: ASYNC109

TTL_SECONDS = 30.0
MAX_ENTRIES = 2000


class UsageCache:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[float, asyncio.Future]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, key: bytes, fetch):
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            self.hits += 1
            self._entries.move_to_end(key)
            return await asyncio.shield(entry[1])
        self.misses += 1
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = (now, future)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        try:
            result = await fetch()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        future.set_result(result)
        return result


class CachingClient:
    """The client with `usage()` answered from a UsageCache; everything else passes through."""

    def __init__(self, client, cache: UsageCache, api_key: str) -> None:
        self._client = client
        self._cache = cache
        self._salt = hashlib.sha256(api_key.encode()).digest()

    async def usage(self, *, timeout: float | None = None, **kwargs):
        request = builders.usage_request(**kwargs)
        key = self._salt + request.SerializeToString(deterministic=True)
        return await self._cache.get(key, lambda: self._client.usage(timeout=timeout, **kwargs))

    def __getattr__(self, name):
        return getattr(self._client, name)
