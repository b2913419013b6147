"""Limits of a tenant: the rows behind MeterAdmin's limit RPCs and the quota engine's cache."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from meterd.domain.errors import NotFound
from meterd.domain.limits import Limit, Selector, StoredLimit
from meterd.domain.windows import WindowSpec
from meterd.store.codes import (
    ACTION,
    ACTION_OF,
    METRIC,
    METRIC_OF,
    PARTITION,
    PARTITION_OF,
    WINDOW_KIND,
    WINDOW_KIND_OF,
)
from meterd.store.db import Database, one

__all__ = ["LimitStore", "StoredLimit"]  # StoredLimit lives in domain.limits

_COLUMNS = """id, description, selector, metric, window_kind, window_seconds, max, partition_by, action,
              alert_thresholds, generation, created_at, updated_at"""


def _limit(row: dict) -> StoredLimit:
    limit = Limit(
        id=row["id"],
        description=row["description"],
        selector=Selector.from_json(row["selector"]),
        metric=METRIC_OF[row["metric"]],
        window=WindowSpec(WINDOW_KIND_OF[row["window_kind"]], row["window_seconds"]),
        max=row["max"],
        partition=PARTITION_OF[row["partition_by"]],
        action=ACTION_OF[row["action"]],
        alert_thresholds=tuple(row["alert_thresholds"]),
        generation=row["generation"],
    )
    return StoredLimit(limit, row["created_at"], row["updated_at"])


class LimitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set(self, tenant_id: str, limit: Limit) -> tuple[StoredLimit, bool]:
        """Create or replace; returns (stored, created). Changing what a counter counts (metric,
        window, partition) starts new counters (generation + 1); changing max or selector keeps them."""
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
            cur = await conn.execute(
                f"""INSERT INTO limits AS l (tenant_id, id, description, selector, metric, window_kind, window_seconds,
                                             max, partition_by, action, alert_thresholds)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (tenant_id, id) DO UPDATE SET
                        description = excluded.description, selector = excluded.selector,
                        metric = excluded.metric, window_kind = excluded.window_kind,
                        window_seconds = excluded.window_seconds, max = excluded.max,
                        partition_by = excluded.partition_by, action = excluded.action,
                        alert_thresholds = excluded.alert_thresholds, updated_at = now(),
                        generation = l.generation + CASE WHEN (l.metric, l.window_kind, l.window_seconds, l.partition_by)
                            IS DISTINCT FROM (excluded.metric, excluded.window_kind, excluded.window_seconds,
                                              excluded.partition_by) THEN 1 ELSE 0 END
                    RETURNING {_COLUMNS}, (xmax = 0) AS created""",
                (
                    tenant_id, limit.id, limit.description, Jsonb(limit.selector.to_json()), METRIC[limit.metric],
                    WINDOW_KIND[limit.window.kind], limit.window.seconds, limit.max, PARTITION[limit.partition],
                    ACTION[limit.action], list(limit.alert_thresholds),
                ),
            )  # fmt: skip
            row = await one(cur)
        return _limit(row), row["created"]

    async def get(self, tenant_id: str, limit_id: str) -> StoredLimit:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM limits WHERE tenant_id = %s AND id = %s", (tenant_id, limit_id)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")
        return _limit(row)

    async def list(self, tenant_id: str) -> list[StoredLimit]:
        async with self.db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM limits WHERE tenant_id = %s ORDER BY id", (tenant_id,))
            return [_limit(row) for row in await cur.fetchall()]

    async def delete(self, tenant_id: str, limit_id: str) -> None:
        async with self.db.connection() as conn:
            cur = await conn.execute("DELETE FROM limits WHERE tenant_id = %s AND id = %s", (tenant_id, limit_id))
        if cur.rowcount == 0:
            raise NotFound(f"limit {limit_id!r} does not exist in this tenant")
