"""Label and error-code rollups (migrations/0012_label_rollups.sql): declarations, the record path's
writes, and the back-fill from raw calls.

Every call is added once per declared label key of its tenant (under its value of that label, ""
when it has none) and once under the reserved key "" whose value is its error code ("" for a
successful call or an error without a code). The first N distinct values of a (tenant, key, UTC day)
are admitted; the rest of that day's values are added under OTHER ("" is never folded nor counted). Writers serialise against a
back-fill with an advisory lock per tenant (shared here, exclusive in `backfill_day` and declarations).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from meterd.domain.dimensions import ERROR_CODE_KEY, MAX_ERROR_CODES_PER_DAY, OTHER, LabelDimension
from meterd.domain.errors import NotFound
from meterd.domain.records import RecordItem, RecordPlan, RollupSums
from meterd.domain.repricing import LabelCallKey
from meterd.store.db import Database, json_rows, lock_existing_tenant, one
from meterd.store.rollups import FIGURES, PART_COLUMNS, RollupTable, fold_costs

_LOCK = "hashtextextended('meter_dimensions/' || %s, 0)"
_FIGURE_NAMES = tuple(c for c, _ in FIGURES)


# The calls of a batch, exploded once per declared key and once for error codes (key ""), with
# their admitted value (or OTHER). {rows} is the jsonb_to_recordset of the pre-summed rows.
def _exploded(record: str) -> str:
    return f"""u AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s) AS u({record})
), x AS (
    SELECT u.*, '{ERROR_CODE_KEY}' AS k, u.e AS v0 FROM u
    UNION ALL
    SELECT u.*, ld.label_key, coalesce(u.l ->> ld.label_key, '') FROM u JOIN label_dimensions ld ON ld.tenant_id = u.t
)"""


_RECORD = ", ".join(
    ["t text", "h timestamptz", "p text", "mo text", "op text", "e text", "l jsonb"]
    + [f"{c} {t}" for c, t in FIGURES]
    + ["hs jsonb"]
)

_ADMIT = f"""WITH {_exploded(_RECORD)}
SELECT meter_admit_dimension_values_v1(
           coalesce((SELECT jsonb_agg(jsonb_build_object('t', t, 'k', k, 'd', d, 'v', v0))
                       FROM (SELECT DISTINCT t, k, date_trunc('day', h, 'UTC') AS d, v0 FROM x) c), '[]'),
           %(error_codes)s)"""


_KEYS = "tenant_id, label_key, {time}, label_value, provider, model, operation"
_GROUP = "t, k, tt, v, p, mo, op"


def _add(table: str, time_column: str, rows: str) -> str:
    """Add the grouped rows `rows` (t, k, tt, v, p, mo, op, figures, hs) to a label rollup table."""
    keys = _KEYS.format(time=time_column)
    updates = ",\n    ".join(f"{c} = r.{c} + excluded.{c}" for c in _FIGURE_NAMES)
    return f"""INSERT INTO {table} AS r ({keys}, {", ".join(_FIGURE_NAMES)}, latency_hist)
{rows}
ON CONFLICT ({keys}) DO UPDATE SET
    {updates},
    latency_hist = meter_sparse_hist_add_v2(r.latency_hist, excluded.latency_hist)"""


def _upsert() -> str:
    """Both grains in one statement: the batch is decoded, exploded and mapped to admitted values
    once. The daily insert waits on the hourly one (the one-time filter reads its output), so every
    writer still locks hourly rows before daily ones, each in key order."""
    sums = ", ".join(f"sum({c}) AS {c}" for c in _FIGURE_NAMES)
    names = ", ".join(_FIGURE_NAMES)
    hourly = _add("usage_label_hourly", "hour", f"SELECT {_GROUP}, {names}, hs FROM g ORDER BY {_GROUP}")
    daily = _add(
        "usage_label_daily",
        "day",
        f"""SELECT t, k, date_trunc('day', tt, 'UTC') AS d, v, p, mo, op, {sums}, meter_sparse_hist_sum_v2(hs)
  FROM g
 WHERE (SELECT count(*) FROM hourly) >= 0
 GROUP BY t, k, d, v, p, mo, op
 ORDER BY t, k, d, v, p, mo, op""",
    )
    return f"""WITH {_exploded(_RECORD)}, g AS (
    SELECT x.t, x.k, x.h AS tt,
           CASE WHEN x.v0 = '' OR EXISTS (SELECT 1 FROM dimension_values dv
                              WHERE (dv.tenant_id, dv.label_key, dv.day, dv.label_value)
                                  = (x.t, x.k, date_trunc('day', x.h, 'UTC'), x.v0))
                THEN x.v0 ELSE '{OTHER}' END AS v,
           x.p, x.mo, x.op, {", ".join(f"sum(x.{c}) AS {c}" for c in _FIGURE_NAMES)}, meter_sparse_hist_sum_v2(x.hs) AS hs
      FROM x
     GROUP BY 1, 2, 3, 4, 5, 6, 7
), hourly AS (
{hourly}
    RETURNING 1
)
{daily}"""


_UPSERT = _upsert()


def _presum(recorded: Sequence[tuple[RecordItem, RecordPlan, dt.datetime]]) -> list[tuple]:
    """Rows per (tenant, hour, provider, model, operation, error code, labels): the figures and
    histogram of RollupSums, summed as the subject and model grains sum theirs."""
    out: dict[tuple, RollupSums] = {}
    for item, plan, occurred_at in recorded:
        call, d = plan.stored, plan.stored.dims
        hour = occurred_at.replace(minute=0, second=0, microsecond=0)
        error_value = "" if call.success else call.error_code
        key = (item.tenant_id, hour, d.provider, d.model, d.operation, error_value,
               json.dumps(d.labels, sort_keys=True))  # fmt: skip
        sums = out.get(key)
        if sums is None:
            sums = out[key] = RollupSums()
        sums.add_call(call, plan.cost_nanos, item.cost_source == "unpriced", plan.cost_parts)
    return [(*k[:6], json.loads(k[6]), *sums.figures(), sums.latency_hist) for k, sums in sorted(out.items())]


_COLUMNS = ("t", "h", "p", "mo", "op", "e", "l", *_FIGURE_NAMES, "hs")


async def add_calls(conn, recorded: Sequence[tuple[RecordItem, RecordPlan, dt.datetime]]) -> None:
    """Queue the label and error-code rollup writes of a batch, given each new call's item, plan and
    occurred_at, as domain.records.rollup_deltas takes them (the connection may be pipelined)."""
    if not recorded:
        return
    # Its own statement: the upsert's snapshot must begin after the lock is granted, so that it sees
    # what a back-fill that held the lock committed.
    for tenant in sorted({item.tenant_id for item, _, _ in recorded}):
        await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_LOCK})", (tenant,))
    rows = _presum(recorded)
    params = {"rows": json_rows(_COLUMNS, rows), "error_codes": MAX_ERROR_CODES_PER_DAY}
    # Only a label or an error code can be a value to admit ("" never is): a batch of successes
    # without labels (most of them) skips the admission statement.
    if any(row[5] or row[6] for row in rows):
        await conn.execute(_ADMIT, params)
    await conn.execute(_UPSERT, params)


# --- reprice ----------------------------------------------------------------------------------------

# (cost, unpriced calls, *cost parts) deltas, as store/rollups.py RollupTable.reprice_sql adds them.
_DELTAS = ("cost_nanos", "unpriced_calls", *PART_COLUMNS)
_REPRICE_RECORD = ", ".join(
    ["t text", "h timestamptz", "p text", "mo text", "op text", "e text", "l jsonb"] + [f"{c} numeric" for c in _DELTAS]
)
# The calls' deltas under each declared key and the error codes, mapped to the values they were
# added under when recorded (admitted, or OTHER), summed per hourly row.
_REPRICE_ROWS = f"""WITH {_exploded(_REPRICE_RECORD)}
SELECT x.t, x.k, x.h,
       CASE WHEN x.v0 = '' OR EXISTS (SELECT 1 FROM dimension_values dv
                          WHERE (dv.tenant_id, dv.label_key, dv.day, dv.label_value)
                              = (x.t, x.k, date_trunc('day', x.h, 'UTC'), x.v0))
            THEN x.v0 ELSE '{OTHER}' END AS v,
       x.p, x.mo, x.op, {", ".join(f"sum(x.{c})::bigint AS {c}" for c in _DELTAS)}
  FROM x
 GROUP BY 1, 2, 3, 4, 5, 6, 7"""
_LABEL_KEY_TYPES = ("text", "text", "timestamptz", "text", "text", "text", "text")
_REPRICED = (
    RollupTable("usage_label_hourly", tuple(_KEYS.format(time="hour").split(", ")), _LABEL_KEY_TYPES, None, sparse=True),
    RollupTable(
        "usage_label_daily", tuple(_KEYS.format(time="day").split(", ")), _LABEL_KEY_TYPES,
        lambda k: (k[0], k[1], k[2].replace(hour=0), *k[3:]), sparse=True,
    ),
)  # fmt: skip


async def add_cost_deltas(conn, tenant_id: str, deltas: dict[LabelCallKey, tuple[int, ...]]) -> None:
    """Add repriced calls' (cost, unpriced calls, *cost parts) deltas to the label and error-code
    rows they were added to, hourly and daily, locked in key order like the record path writes them.
    Rows that do not exist (a key declared after the call, and not back-filled) are left alone."""
    rows = [(tenant_id, *key[:5], dict(key[5]), *change) for key, change in sorted(deltas.items()) if any(change)]
    if not rows:
        return
    await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_LOCK})", (tenant_id,))
    cur = await conn.execute(_REPRICE_ROWS, {"rows": json_rows(("t", "h", "p", "mo", "op", "e", "l", *_DELTAS), rows)})
    hourly = {(r["t"], r["k"], r["h"], r["v"], r["p"], r["mo"], r["op"]): tuple(int(r[c]) for c in _DELTAS)
              for r in await cur.fetchall()}  # fmt: skip
    for table in _REPRICED:
        table_deltas = hourly if table.from_hourly is None else fold_costs(hourly, table.from_hourly)
        keys = sorted(k for k, v in table_deltas.items() if any(v))
        if not keys:
            continue
        lock, update = table.reprice_sql
        columns = tuple(list(column) for column in zip(*keys, strict=True))
        await conn.execute(lock, columns)
        values = tuple(list(column) for column in zip(*(table_deltas[k] for k in keys), strict=True))
        await conn.execute(update, (*columns, *values))


# --- back-fill from raw calls ---------------------------------------------------------------------


def _value_of(key: str) -> str:
    """The value raw calls have for a dimension key (as the record path computes it)."""
    if key == ERROR_CODE_KEY:
        return "CASE WHEN success THEN '' ELSE error_code END"
    return "coalesce(labels ->> %(key)s, '')"


_RAW_PARTS = ", ".join(f"coalesce(cost_parts[{i}], 0) AS {c}" for i, c in enumerate(PART_COLUMNS, 1))
_RAW_FIGURES = """1 AS calls, CASE WHEN success THEN 0 ELSE 1 END AS errors, input_tokens, output_tokens,
       cached_read_tokens, cache_write_tokens, reasoning_tokens, requests, units, cost_nanos,
       CASE WHEN cost_source = 'unpriced' THEN 1 ELSE 0 END AS unpriced_calls,
       CASE WHEN latency_us IS NULL THEN 0 ELSE 1 END AS latency_count, coalesce(latency_us, 0) AS latency_sum_us,
       retry_count, """
_BUCKET = "CASE WHEN latency_us IS NOT NULL THEN least(127, floor(log(2, greatest(latency_us, 1)) * 4))::int END"


def _backfill_sql(key: str) -> tuple[str, ...]:
    value = _value_of(key)
    day_calls = "FROM calls WHERE tenant_id = %(tenant)s AND occurred_at >= %(day)s AND occurred_at < %(next)s"
    mapped = f"""CASE WHEN {value} = '' OR EXISTS (SELECT 1 FROM dimension_values dv
                        WHERE (dv.tenant_id, dv.label_key, dv.day, dv.label_value) = (%(tenant)s, %(key)s, %(day)s, {value}))
          THEN {value} ELSE '{OTHER}' END"""
    names = ", ".join(_FIGURE_NAMES)
    sums = ", ".join(f"sum({c})" for c in _FIGURE_NAMES)
    return (
        """DELETE FROM usage_label_hourly WHERE tenant_id = %(tenant)s AND label_key = %(key)s
              AND hour >= %(day)s AND hour < %(next)s""",
        "DELETE FROM usage_label_daily WHERE tenant_id = %(tenant)s AND label_key = %(key)s AND day = %(day)s",
        "DELETE FROM dimension_values WHERE tenant_id = %(tenant)s AND label_key = %(key)s AND day = %(day)s",
        "DELETE FROM dimension_value_counts WHERE tenant_id = %(tenant)s AND label_key = %(key)s AND day = %(day)s",
        # The day's first values (by their first call) are admitted, like the record path admits in arrival order.
        f"""INSERT INTO dimension_values (tenant_id, label_key, day, label_value)
            SELECT %(tenant)s, %(key)s, %(day)s, v
              FROM (SELECT {value} AS v, min(occurred_at) AS first {day_calls} GROUP BY 1) s
             WHERE v <> ''
             ORDER BY first, v COLLATE "C" LIMIT %(max)s""",
        """INSERT INTO dimension_value_counts (tenant_id, label_key, day, n)
            SELECT %(tenant)s, %(key)s, %(day)s, count(*) FROM dimension_values
             WHERE tenant_id = %(tenant)s AND label_key = %(key)s AND day = %(day)s""",
        f"""INSERT INTO usage_label_hourly (tenant_id, label_key, hour, label_value, provider, model, operation, {names},
                                           latency_hist)
            SELECT %(tenant)s, %(key)s, hour, v, provider, model, operation, {sums},
                   coalesce(jsonb_object_agg(bucket, n) FILTER (WHERE bucket IS NOT NULL), '{{}}')
              FROM (SELECT date_trunc('hour', occurred_at, 'UTC') AS hour, {mapped} AS v, provider, model, operation,
                           {_BUCKET} AS bucket, count(*) FILTER (WHERE latency_us IS NOT NULL) AS n,
                           {", ".join(f"sum({c}) AS {c}" for c in _FIGURE_NAMES)}
                      FROM (SELECT occurred_at, success, error_code, labels, latency_us, provider, model, operation,
                                   {_RAW_FIGURES}{_RAW_PARTS} {day_calls}) c
                     GROUP BY 1, 2, 3, 4, 5, 6) b
             GROUP BY hour, v, provider, model, operation""",
        f"""INSERT INTO usage_label_daily (tenant_id, label_key, day, label_value, provider, model, operation, {names},
                                          latency_hist)
            SELECT tenant_id, label_key, %(day)s, label_value, provider, model, operation, {sums},
                   meter_sparse_hist_sum_v2(latency_hist)
              FROM usage_label_hourly
             WHERE tenant_id = %(tenant)s AND label_key = %(key)s AND hour >= %(day)s AND hour < %(next)s
             GROUP BY tenant_id, label_key, label_value, provider, model, operation""",
    )


class LabelRollupStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def declared(self, tenant_id: str) -> dict[str, LabelDimension]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT label_key, max_values_per_day, created_at FROM label_dimensions WHERE tenant_id = %s",
                (tenant_id,),
            )
            return {r["label_key"]: LabelDimension(**r) for r in await cur.fetchall()}

    async def set(self, tenant_id: str, key: str, max_values_per_day: int) -> tuple[LabelDimension, bool]:
        """Declare (or change the bound of) a dimension; True when it is new."""
        async with self.db.transaction() as conn:
            await lock_existing_tenant(conn, _LOCK, tenant_id)
            cur = await conn.execute(
                """INSERT INTO label_dimensions AS d (tenant_id, label_key, max_values_per_day) VALUES (%s, %s, %s)
                   ON CONFLICT (tenant_id, label_key) DO UPDATE SET max_values_per_day = excluded.max_values_per_day
                   RETURNING label_key, max_values_per_day, created_at, (xmax = 0) AS created""",
                (tenant_id, key, max_values_per_day),
            )
            r = await one(cur)
        created = r.pop("created")
        return LabelDimension(**r), created

    async def delete(self, tenant_id: str, key: str) -> None:
        """Forget a dimension and its rollups (a later declaration starts afresh)."""
        async with self.db.transaction() as conn:
            await conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK})", (tenant_id,))
            cur = await conn.execute(
                "DELETE FROM label_dimensions WHERE tenant_id = %s AND label_key = %s RETURNING 1", (tenant_id, key)
            )
            if await cur.fetchone() is None:
                raise NotFound(f"label dimension {key!r} is not declared (see ListLabelDimensions)")
            for table in ("usage_label_hourly", "usage_label_daily", "dimension_values", "dimension_value_counts"):
                await conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s AND label_key = %s", (tenant_id, key))

    async def first_retained_call(self, tenant_id: str) -> dt.datetime | None:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT min(occurred_at) AS t FROM calls WHERE tenant_id = %s", (tenant_id,))
            return (await one(cur))["t"]

    async def backfill_day(self, tenant_id: str, key: str, day: dt.datetime, max_values: int) -> None:
        """Recompute one UTC day of one dimension from the raw calls, in one transaction that holds
        the tenant's exclusive lock (recording waits for it, so no call is counted twice or lost)."""
        params = {"tenant": tenant_id, "key": key, "day": day, "next": day + dt.timedelta(days=1), "max": max_values}
        async with self.db.transaction() as conn:
            await conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK})", (tenant_id,))
            for sql in _backfill_sql(key):
                await conn.execute(sql, params)
