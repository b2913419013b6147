"""Read-only counter readings for GetUsage's limit statuses: one indexed look-up per counter (the
counters' primary key), no lock and no write, so reporting a limit never charges or denies it."""

from __future__ import annotations

import datetime as dt

from meterd.domain.limits import Limit
from meterd.domain.quota import CounterReading
from meterd.domain.windows import WindowKind, previous_window_start, window_start
from meterd.store.db import Database

_READ = """SELECT k.i, c.used, c.reserved
  FROM unnest(%(ids)s::text[], %(generations)s::bigint[], %(parts)s::text[], %(starts)s::timestamptz[])
       WITH ORDINALITY AS k(limit_id, generation, part, ws, i)
  JOIN counters c ON c.tenant_id = %(tenant)s AND c.limit_id = k.limit_id AND c.generation = k.generation
                 AND c.partition_key = k.part AND c.window_start = k.ws"""


class LimitCounterStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def readings(self, tenant_id: str, wanted: list[tuple[Limit, str]], at: dt.datetime) -> list[CounterReading]:
        """The counter of each (limit, partition) in the window holding `at` (and, for a sliding
        window, its previous bucket), as meter_check would read them; zeros for a counter not
        created yet. One reading per entry of `wanted`, in its order."""
        keys: list[tuple[Limit, str, dt.datetime]] = []
        for limit, partition in wanted:
            keys.append((limit, partition, window_start(limit.window, at)))
            if limit.window.kind is WindowKind.SLIDING:
                keys.append((limit, partition, previous_window_start(limit.window, at)))
        found: dict[int, tuple[int, int]] = {}
        if keys:
            params = {
                "tenant": tenant_id,
                "ids": [k[0].id for k in keys],
                "generations": [k[0].generation for k in keys],
                "parts": [k[1] for k in keys],
                "starts": [k[2] for k in keys],
            }
            async with self.db.connection() as conn:
                cur = await conn.execute(_READ, params)
                found = {r["i"] - 1: (r["used"], r["reserved"]) for r in await cur.fetchall()}
        out, i = [], 0
        for limit, _ in wanted:
            used, reserved = found.get(i, (0, 0))
            start = keys[i][2]
            i += 1
            prev_used = prev_reserved = 0
            if limit.window.kind is WindowKind.SLIDING:
                prev_used, prev_reserved = found.get(i, (0, 0))
                i += 1
            out.append(CounterReading(start, used, reserved, prev_used, prev_reserved))
        return out
