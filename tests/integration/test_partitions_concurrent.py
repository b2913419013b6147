"""Replicas starting together against a fresh database all create the same monthly partitions; none
may fail on it (one that lost the race used to stay NOT_SERVING with DuplicateTable)."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg

from meterd.store.db import Database
from meterd.store.migrate import migrate
from meterd.store.partitions import PartitionStore

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # any-date: fixed months, the date does not matter


async def test_replicas_creating_the_same_partitions_at_once_all_succeed(fresh_database_url):
    await migrate(fresh_database_url)
    replicas = [Database(fresh_database_url, min_size=1, max_size=1) for _ in range(6)]
    for db in replicas:
        await db.open()
    try:
        made = await asyncio.gather(
            *(PartitionStore(db).ensure_months(START, START + dt.timedelta(days=365)) for db in replicas)
        )
    finally:
        for db in replicas:
            await db.close()
    assert all(names == made[0] for names in made) and len(made[0]) == 12
    with psycopg.connect(fresh_database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'calls\\_2026\\_%%'"
        ).fetchone()[0]
    assert count == 12
