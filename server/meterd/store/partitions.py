"""Monthly partitions of the raw calls table, and retention by dropping whole months."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable

import psycopg
from psycopg import sql

from meterd.store.db import Database

log = logging.getLogger(__name__)
_NAME = re.compile(r"^calls_(\d{4})_(\d{2})$")


def month_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


PARTITION_LOCK_KEY = 0x6D65746572_70  # "meter" + "p"


class PartitionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_months(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        """Create the monthly partitions covering [start, end); returns their names."""
        names = []
        month = month_start(start)
        async with self.db.connection() as conn:
            while month < end:
                try:
                    # Replicas starting together all ensure the same months: the function's "exists?"
                    # check and its CREATE are two steps, so creations are serialised (a replica that
                    # lost the race once stayed NOT_SERVING on DuplicateTable).
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
                        cur = await conn.execute("SELECT meter_ensure_calls_partition(%s) AS name", (month,))
                        names.append((await cur.fetchone())["name"])
                except psycopg.errors.CheckViolation:
                    # calls_default already holds rows of that month (written before the partition
                    # existed); they stay there, and retention deletes them by date instead.
                    log.warning("cannot create the calls partition for %s: calls_default has rows of it", month)
                month = next_month(month)
        return names

    async def partitions(self) -> list[tuple[str, dt.datetime, dt.datetime]]:
        """(name, start, end) of every monthly partition, oldest first."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'calls'::regclass"""
            )
            rows = await cur.fetchall()
        out = []
        for row in rows:
            match = _NAME.match(row["name"])
            if match:
                start = dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.UTC)
                out.append((row["name"], start, next_month(start)))
        return sorted(out, key=lambda p: p[1])

    async def drop_older_than(
        self,
        cutoff: dt.datetime,
        *,
        now: dt.datetime | None = None,
        dry_run: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[list[str], dt.datetime, dict[str, int]]:
        """Drop the monthly partitions that end at or before `cutoff`, and the same months' rows of
        calls_default and call_ids; prune the history older than that boundary (see _HISTORY), as
        of `now` (default: the database's clock). Rollups, counters and live state are kept. Returns
        the partitions dropped, the boundary below which raw calls are gone, and the history rows
        deleted per table. progress(steps done, steps) after each table pruned and partition dropped."""
        doomed = [p for p in await self.partitions() if p[2] <= cutoff]
        boundary = max((p[2] for p in doomed), default=month_start(cutoff))
        params = {"boundary": boundary, "now": now}
        steps = len(_HISTORY) + (0 if dry_run else len(doomed) + 1)
        step = _Steps(steps, progress)
        if dry_run:
            async with self.db.connection() as conn:
                pruned = await _prune(conn, params, "SELECT count(*) AS n FROM {table} t WHERE {condition}", step)
            return [p[0] for p in doomed], boundary, pruned
        async with self.db.transaction() as conn:
            pruned = await _prune(
                conn,
                params,
                "WITH d AS (DELETE FROM {table} t WHERE {condition} RETURNING 1) SELECT count(*) AS n FROM d",
                step,
            )
            for name, _, _ in doomed:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                step()
            await conn.execute("DELETE FROM calls_default WHERE occurred_at < %s", (boundary,))
            await conn.execute("DELETE FROM call_ids WHERE occurred_at < %s", (boundary,))
            step()
        return [p[0] for p in doomed], boundary, pruned


# History that retention prunes with the raw calls: rows older than the boundary that nothing live
# depends on (as of %(now)s, the database's clock unless the caller gives one). Alerts of windows
# still running stay (their dedup keys stop a level firing twice), as do cooldowns still running and
# webhook deliveries still owed.
_NOW = "coalesce(%(now)s::timestamptz, now())"
_HISTORY = (
    (
        "alerts",
        f"""t.created_at < %(boundary)s AND (t.window_end IS NULL OR t.window_end <= {_NOW}) AND NOT EXISTS (
               SELECT 1 FROM alert_webhooks w WHERE (w.tenant_id, w.alert_id) = (t.tenant_id, t.id)
                  AND w.delivered_at IS NULL AND w.failed_at IS NULL) AND NOT EXISTS (
               SELECT 1 FROM alert_deliveries d WHERE (d.tenant_id, d.alert_id) = (t.tenant_id, t.id)
                  AND d.delivered_at IS NULL AND d.failed_at IS NULL)""",
    ),
    (
        "alert_deliveries",
        "(t.delivered_at IS NOT NULL OR t.failed_at IS NOT NULL) AND coalesce(t.delivered_at, t.failed_at) < %(boundary)s",
    ),
    (
        "alert_webhooks",
        "(t.delivered_at IS NOT NULL OR t.failed_at IS NOT NULL) AND coalesce(t.delivered_at, t.failed_at) < %(boundary)s",
    ),
    (
        "alert_cooldowns",
        f"""t.last_at < %(boundary)s AND NOT EXISTS (
               SELECT 1 FROM alert_rules r WHERE (r.tenant_id, r.id) = (t.tenant_id, t.rule_id)
                  AND t.last_at + make_interval(secs => r.cooldown_s) > {_NOW})""",
    ),
    ("quota_denials", "t.minute < %(boundary)s"),
    ("reservations", "t.state <> 'active' AND t.ended_at < %(boundary)s"),
)


class _Steps:
    """Counts retention's steps for a progress callback (or nothing without one)."""

    def __init__(self, total: int, progress: Callable[[int, int | None], None] | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


async def _prune(conn, params: dict, template: str, step: _Steps) -> dict[str, int]:
    """Runs `template` (a count or a counting DELETE) for each table of _HISTORY; rows per table."""
    out = {}
    for table, condition in _HISTORY:
        cur = await conn.execute(template.format(table=table, condition=condition), params)
        out[table] = (await cur.fetchone())["n"]
        step()
    return out
