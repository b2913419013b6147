"""The record path, group-committed: a batch of RecordCall items in one transaction.

Per batch: claim every call_id (sorted), settle the reservations being recorded (sorted), then in
one pipelined round trip apply pre-summed counter deltas in key order, insert the calls and commit.
Each item still gets its own answer: new, duplicate (with the first answer), or ALREADY_EXISTS.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow

from meterd.domain.errors import AlreadyExists, MeterError
from meterd.domain.pricing import CostBreakdown
from meterd.domain.quota import CounterReading, Estimate, ReservationState
from meterd.domain.records import (
    CounterDeltas,
    CounterKey,
    EndedReservation,
    HeldCharge,
    Recorded,
    RecordedCounter,
    RecordItem,
    RecordPlan,
    RecordResult,
    counter_deltas,
    plan_record,
    rollup_deltas,
)
from meterd.store import label_rollups, rollups
from meterd.store.codes import METRIC_OF, RESERVATION_STATE_OF
from meterd.store.db import Database, json_rows, rollback

__all__ = ["Recorded", "RecordItem", "RecordResult", "RecordStore"]  # the types live in domain.records

# A claimed call_id: (occurred_at, recorded_at).
_Claim = tuple[dt.datetime, dt.datetime]

_CALL_COLUMNS = (
    "tenant_id", "call_id", "occurred_at", "recorded_at", "api_key_id", "reservation_id", "subject", "provider",
    "model", "operation", "labels", "metadata", "input_tokens", "output_tokens", "cached_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "requests", "units", "latency_us", "ttft_us", "retry_count", "success",
    "error_code", "error_message", "cost_nanos", "cost_source", "price_id", "cost_parts", "service_tier",
)  # fmt: skip
_INSERT_CALLS = f"""INSERT INTO calls ({", ".join(_CALL_COLUMNS)})
SELECT {", ".join(_CALL_COLUMNS)} FROM jsonb_populate_recordset(NULL::calls, %s)"""


class RecordStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_batch(self, items: list[RecordItem]) -> list[Recorded | MeterError]:
        # Pipeline mode for the whole transaction: BEGIN travels with the claims, COMMIT with the
        # writes, so a batch costs two round trips (three when it settles reservations) instead of four.
        # BEGIN and COMMIT are queued as plain statements: psycopg's transaction() block costs about
        # 150 us more client CPU per transaction in pipeline mode (measured; docs/scaling.md).
        async with self.db.connection() as conn:
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    claims, plans, first_answers, counters = await self._write(conn, items)
                    await conn.execute("COMMIT")
                    readings = await _readings(counters)  # read after COMMIT was queued with the writes
            except Exception:
                await rollback(conn)  # PostgreSQL skipped the rest (COMMIT too) once a statement failed
                raise
        return self._answers(items, claims, plans, first_answers, readings)

    async def _write(
        self, conn: AsyncConnection[DictRow], items: list[RecordItem]
    ) -> tuple[
        dict[tuple[str, str], _Claim],
        dict[int, RecordPlan],
        dict[tuple[str, str], dict[str, Any]],
        AsyncCursor[DictRow] | None,
    ]:
        """Claims, settlements and writes of one batch, in its transaction; the counters' cursor is
        read by the caller once COMMIT is queued. The accounting is domain.records.plan_record's."""
        claims = await self._claim(conn, items)
        owners: dict[tuple[str, str], int] = {}
        for index, item in enumerate(items):
            key = (item.tenant_id, item.call.call_id)
            if key in claims and key not in owners:
                owners[key] = index
        owner_items = sorted(owners.values())
        ended = await self._settle(conn, [items[i] for i in owner_items])

        deltas = counter_deltas()
        plans: dict[int, RecordPlan] = {}
        for i in owner_items:
            item = items[i]
            occurred_at = claims[(item.tenant_id, item.call.call_id)][0]
            reservation = ended.get((item.tenant_id, item.call.reservation_id)) if item.call.reservation_id else None
            plans[i] = plan_record(item, occurred_at, reservation, deltas)

        owned = [(items[i], plans[i], claims[(items[i].tenant_id, items[i].call.call_id)]) for i in owner_items]
        counters = await self._apply(conn, deltas, owned)
        duplicates = [i for i in range(len(items)) if i not in plans]
        first_answers = await self._first_answers(conn, [items[i] for i in duplicates]) if duplicates else {}
        return claims, plans, first_answers, counters

    def _answers(
        self,
        items: list[RecordItem],
        claims: dict[tuple[str, str], _Claim],
        plans: dict[int, RecordPlan],
        first_answers: dict[tuple[str, str], dict[str, Any]],
        readings: dict[CounterKey, CounterReading],
    ) -> list[Recorded | MeterError]:
        out: list[Recorded | MeterError] = []
        for index, item in enumerate(items):
            if index in plans:
                plan = plans[index]
                claim = claims[(item.tenant_id, item.call.call_id)]
                result = RecordResult(item.call.call_id, False, plan.cost_nanos, item.cost_source, item.price_id,
                                      claim[1], plan.cost_parts)  # fmt: skip
                counters = [RecordedCounter(c.limit, c.partition, c.amount, readings[c.key]) for c in plan.charged]
                out.append(Recorded(result, plan.settled, counters))
                continue
            first = first_answers.get((item.tenant_id, item.call.call_id))
            if first is None or bytes(first["content_hash"]) != item.call.fingerprint():
                out.append(
                    AlreadyExists(
                        f"call_id {item.call.call_id!r} was already recorded with different content; "
                        "use a new call_id for a new call and the same content for a retry"
                    )
                )
            else:
                parts = first["cost_parts"]
                result = RecordResult(item.call.call_id, True, first["cost_nanos"], first["cost_source"],
                                      first["price_id"], first["recorded_at"],
                                      None if parts is None else CostBreakdown.from_tuple(parts))  # fmt: skip
                out.append(Recorded(result, False, []))
        return out

    async def _claim(self, conn: AsyncConnection[DictRow], items: list[RecordItem]) -> dict[tuple[str, str], _Claim]:
        """call_id → (occurred_at, recorded_at) for the ids this batch took; sorted, so two batches
        claiming overlapping ids never deadlock."""
        cur = await conn.execute(
            """INSERT INTO call_ids (tenant_id, call_id, occurred_at, content_hash, cost_nanos, cost_source, price_id,
                                    cost_parts)
               SELECT t, c, coalesce(o, now()), decode(h, 'hex'), n, s, p, cp
                 FROM jsonb_to_recordset(%s) AS u(t text, c text, o timestamptz, h text, n bigint, s text, p text,
                                                  cp bigint[])
                ORDER BY t, c
               ON CONFLICT (tenant_id, call_id) DO NOTHING
               RETURNING tenant_id, call_id, occurred_at, recorded_at""",
            (
                json_rows(
                    ("t", "c", "o", "h", "n", "s", "p", "cp"),
                    [
                        (i.tenant_id, i.call.call_id, i.call.occurred_at or i.at, i.call.fingerprint().hex(),
                         i.cost_nanos, i.cost_source, i.price_id, i.cost_parts.as_tuple())
                        for i in items
                    ],
                ),
            ),
        )  # fmt: skip
        return {(r["tenant_id"], r["call_id"]): (r["occurred_at"], r["recorded_at"]) for r in await cur.fetchall()}

    async def _settle(
        self, conn: AsyncConnection[DictRow], items: list[RecordItem]
    ) -> dict[tuple[str, str], EndedReservation]:
        """End the live reservations these calls name (locked in key order).

        A reservation is settled only by a call of its own subject, provider, model and operation;
        one named by a call of other dimensions is released instead (state 'released'), so no
        subject's counters are charged for another's call."""
        wanted = [
            (i.tenant_id, i.call.reservation_id, i.call.call_id, i.at, i.call.dims.subject, i.call.dims.provider,
             i.call.dims.model, i.call.dims.operation)
            for i in items
            if i.call.reservation_id
        ]  # fmt: skip
        if not wanted:
            return {}
        cur = await conn.execute(
            """WITH wanted AS (
                   SELECT DISTINCT ON (t, id) t, id, c, a, s, p, m, op
                     FROM ROWS FROM (jsonb_to_recordset(%s) AS (t text, id text, c text, a timestamptz, s text,
                                                                p text, m text, op text))
                       WITH ORDINALITY AS u(t, id, c, a, s, p, m, op, o) ORDER BY t, id, o
               ), matched AS (
                   -- Locked in key order; a locked row reads as its latest version, so the dimensions
                   -- compared here are the ones the UPDATE below ends (no second read of the row).
                   SELECT w.*, (r.subject, r.provider, r.model, r.operation) = (w.s, w.p, w.m, w.op) AS same
                     FROM reservations r JOIN wanted w ON (r.tenant_id, r.id) = (w.t, w.id)
                    WHERE r.state = 'active' ORDER BY r.tenant_id, r.id FOR UPDATE OF r
               )
               UPDATE reservations r
                  SET state = CASE WHEN w.same THEN 'settled' ELSE 'released' END,
                      ended_at = coalesce(w.a, now()), call_id = CASE WHEN w.same THEN w.c END
                 FROM matched w
                WHERE (r.tenant_id, r.id) = (w.t, w.id)
               RETURNING r.tenant_id, r.id, w.c AS named_by, r.state, r.estimate, r.charges, r.cost_nanos""",
            (json_rows(("t", "id", "c", "a", "s", "p", "m", "op"), wanted),),  # json_rows: not 8 arrays
        )
        return {(r["tenant_id"], r["id"]): _ended(r) for r in await cur.fetchall()}

    async def _apply(
        self, conn: AsyncConnection[DictRow], deltas: CounterDeltas, owned: list[tuple[RecordItem, RecordPlan, _Claim]]
    ) -> AsyncCursor[DictRow] | None:
        """Queue the counter deltas (key order), the call rows, the rollups and the corrected first
        answers (the connection is in pipeline mode); returns the counters' cursor, or None."""
        keys = sorted(deltas)
        counters_cur = None
        if keys:
            counters_cur = await conn.execute(
                """INSERT INTO counters AS c (tenant_id, limit_id, generation, partition_key, window_start, used, reserved)
                   SELECT * FROM jsonb_to_recordset(%s) AS u(t text, l text, g bigint, p text, w timestamptz,
                                                             used bigint, reserved bigint)
                    ORDER BY 1, 2, 3, 4, 5  -- the key order every writer locks counters in
                   ON CONFLICT (tenant_id, limit_id, generation, partition_key, window_start)
                   DO UPDATE SET used = c.used + excluded.used, reserved = c.reserved + excluded.reserved
                   RETURNING tenant_id, limit_id, generation, partition_key, window_start, used, reserved""",
                (
                    json_rows(
                        ("t", "l", "g", "p", "w", "used", "reserved"),
                        [(*k, deltas[k].used, deltas[k].reserved) for k in keys],
                    ),
                ),  # fmt: skip
            )
        rows = []
        for item, plan, claim in owned:
            stored, cost, parts = plan.stored, plan.cost_nanos, plan.cost_parts
            d = stored.dims
            rows.append((
                item.tenant_id, stored.call_id, claim[0], claim[1], item.api_key_id, stored.reservation_id or None,
                d.subject, d.provider, d.model, d.operation, d.labels, stored.metadata,
                stored.input_tokens, stored.output_tokens, stored.cached_read_tokens, stored.cache_write_tokens,
                stored.reasoning_tokens, stored.requests, stored.units, stored.latency_us, stored.ttft_us,
                stored.retry_count, stored.success, stored.error_code, stored.error_message, cost,
                item.cost_source, item.price_id, parts.as_tuple(), stored.service_tier,
            ))  # fmt: skip
        if rows:
            await conn.execute(_INSERT_CALLS, (json_rows(_CALL_COLUMNS, rows),))
        hourly: dict[Any, Any] = rollup_deltas((item, plan, claim[0]) for item, plan, claim in owned)
        for table in rollups.TABLES:
            summed = hourly if table.from_hourly is None else rollups.fold(hourly, table.from_hourly)
            if summed:
                await conn.execute(table.upsert_sql, (json_rows(table.json_columns, rollups.upsert_rows(summed)),))
        # After the subject and model grains: every writer locks rollup rows in this order.
        await label_rollups.add_calls(conn, [(item, plan, claim[0]) for item, plan, claim in owned])
        corrected = [
            (plan.cost_nanos, list(plan.cost_parts.as_tuple()), item.tenant_id, item.call.call_id)
            for item, plan, _ in owned
            if plan.cost_nanos != item.cost_nanos or plan.cost_parts != item.cost_parts
        ]
        if corrected:
            await conn.cursor().executemany(
                "UPDATE call_ids SET cost_nanos = %s, cost_parts = %s WHERE tenant_id = %s AND call_id = %s", corrected
            )
        return counters_cur

    async def _first_answers(
        self, conn: AsyncConnection[DictRow], items: list[RecordItem]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        cur = await conn.execute(
            """SELECT tenant_id, call_id, content_hash, cost_nanos, cost_source, price_id, recorded_at, cost_parts
                 FROM call_ids
                WHERE (tenant_id, call_id) IN (SELECT * FROM jsonb_to_recordset(%s) AS u(t text, c text))""",
            (json_rows(("t", "c"), [(i.tenant_id, i.call.call_id) for i in items]),),
        )
        return {(r["tenant_id"], r["call_id"]): r for r in await cur.fetchall()}


def _ended(row: dict[str, Any]) -> EndedReservation:
    estimate = row["estimate"] or {}
    return EndedReservation(
        named_by=row["named_by"],
        settled=RESERVATION_STATE_OF[row["state"]] is ReservationState.SETTLED,
        estimate=Estimate(**{k: v for k, v in estimate.items() if k in _ESTIMATE_FIELDS}),
        charges=tuple(
            HeldCharge(
                c["limit_id"],
                c["generation"],
                c["partition"],
                dt.datetime.fromisoformat(c["window_start"]),
                METRIC_OF[c["metric"]],
                c["amount"],
            )
            for c in row["charges"]
        ),  # fmt: skip
        cost_nanos=row["cost_nanos"],
    )


_ESTIMATE_FIELDS = frozenset(Estimate.__dataclass_fields__)


async def _readings(cursor: AsyncCursor[DictRow] | None) -> dict[CounterKey, CounterReading]:
    if cursor is None:
        return {}
    return {
        (r["tenant_id"], r["limit_id"], r["generation"], r["partition_key"], r["window_start"]): CounterReading(
            r["window_start"], r["used"], r["reserved"]
        )
        for r in await cursor.fetchall()
    }
