"""Pruning of the label rollups' admission tables (dimension_values, dimension_value_counts).

They hold, per (tenant, key, UTC day), which values were admitted under the day's bound. Only the
record path and a back-fill read them, and only for the day a call lands in: once no call can land
in a day any more (RecordCall refuses occurred_at older than the back-fill horizon), its rows are
dead weight. The rollups themselves keep the admitted values (or __other__) and are never touched
here. A back-fill of an older day recomputes its admissions from the raw calls, so it does not need
the pruned rows; it writes them again, and the next retention run prunes them again.
"""

from __future__ import annotations

import datetime as dt

from meterd.store.db import Database, one

_TABLES = ("dimension_values", "dimension_value_counts")


def admission_boundary(now: dt.datetime, backfill_horizon: dt.timedelta) -> dt.datetime:
    """The UTC midnight starting the oldest day a call may still be recorded into at `now`: the day
    of now - backfill_horizon is kept whole (a call may land in its later hours)."""
    oldest = (now - backfill_horizon).astimezone(dt.UTC)
    return oldest.replace(hour=0, minute=0, second=0, microsecond=0)


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
