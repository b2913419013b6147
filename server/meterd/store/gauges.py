"""Whole-database figures for the metrics endpoint, read periodically (never per scrape)."""

from __future__ import annotations

from meterd.store.db import Database, one


async def active_reservations(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM reservations WHERE state = 'active'")
        return (await one(cur))["n"]
