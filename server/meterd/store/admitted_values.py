"""Pruning of the label rollups' admission tables (dimension_values, dimension_value_counts).

They hold, per (tenant, key, UTC day), which values were admitted under the day's bound. The record
path reads them for the day a call lands in, and RepriceCalls to put a retained call's cost delta
under the value it was admitted as: so a day's rows are dead weight once its raw calls are gone
(meter retention drops them first; no call can be recorded that far back, since retention keeps at
least the back-fill horizon). The rollups themselves keep the admitted values (or __other__) and are
never touched here.
"""

from __future__ import annotations

import datetime as dt

from meterd.store.db import Database, one

_TABLES = ("dimension_values", "dimension_value_counts")


async def prune_admitted_values(db: Database, before: dt.datetime, *, dry_run: bool = False) -> dict[str, int]:
    """Delete (or count, dry_run) the admission rows of days before `before`; rows per table.

    No tenant lock is taken: writers only touch days a call can still land in, at or after `before`
    (a back-fill of an older day rewrites that day's rows whole in its own transaction)."""
    out = {}
    template = (
        "SELECT count(*) AS n FROM {table} WHERE day < %s"
        if dry_run
        else "WITH d AS (DELETE FROM {table} WHERE day < %s RETURNING 1) SELECT count(*) AS n FROM d"
    )
    async with db.transaction() as conn:
        for table in _TABLES:
            cur = await conn.execute(template.format(table=table), (before,))
            out[table] = (await one(cur))["n"]
    return out
