"""Monthly partitions of the raw calls table, and retention by dropping whole months."""

from __future__ import annotations

import datetime as dt
import logging
import re

import psycopg
from psycopg import sql

from meterd.store.db import Database

log = logging.getLogger(__name__)
_NAME = re.compile(r"^calls_(\d{4})_(\d{2})$")


def month_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


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

    async def drop_older_than(self, cutoff: dt.datetime, *, dry_run: bool = False) -> tuple[list[str], dt.datetime]:
        """Drop the monthly partitions that end at or before `cutoff`, and the same months' rows of
        calls_default and call_ids. Rollups, counters and reservations are kept. Returns the
        partitions dropped and the boundary below which raw calls are gone."""
        doomed = [p for p in await self.partitions() if p[2] <= cutoff]
        boundary = max((p[2] for p in doomed), default=month_start(cutoff))
        if dry_run:
            return [p[0] for p in doomed], boundary
        async with self.db.transaction() as conn:
            for name, _, _ in doomed:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            await conn.execute("DELETE FROM calls_default WHERE occurred_at < %s", (boundary,))
            await conn.execute("DELETE FROM call_ids WHERE occurred_at < %s", (boundary,))
        return [p[0] for p in doomed], boundary
