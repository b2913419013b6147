"""The record path, group-committed: a batch of RecordCall items in one transaction.

Per batch: claim every call_id (sorted), settle the reservations being recorded (sorted), then in
one pipelined round trip apply pre-summed counter deltas in key order, insert the calls and commit.
Each item still gets its own answer: new, duplicate (with the first answer), or ALREADY_EXISTS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

from meterd.domain import histogram
from meterd.domain.calls import CallInput
from meterd.domain.errors import AlreadyExists, MeterError
from meterd.domain.limits import Limit, Metric, Usage
from meterd.domain.pricing import CostBreakdown
from meterd.domain.quota import Charge, CounterKey, CounterReading
from meterd.domain.windows import window_start
from meterd.store import rollups
from meterd.store.db import Database, json_rows


@dataclasses.dataclass(frozen=True)
class RecordResult:
    call_id: str
    duplicate: bool
    cost_nanos: int
    cost_source: str
    price_id: str
    recorded_at: dt.datetime
    cost_parts: CostBreakdown | None = None  # None: a first answer stored before breakdowns existed


@dataclasses.dataclass(frozen=True)
class RecordItem:
    tenant_id: str
    api_key_id: str
    call: CallInput
    cost_nanos: int
    cost_parts: CostBreakdown  # sums to cost_nanos
    cost_source: str
    price_id: str
    actual: Usage
    charges: list[Charge]  # the matched limits, charged when no live reservation is settled
    limits: dict[str, Limit]  # every limit of the tenant, to describe a settled reservation's counters
    at: dt.datetime | None  # injected clock (tests); None: the database's


@dataclasses.dataclass(frozen=True)
class RecordedCounter:
    limit: Limit
    partition: str
    amount: int
    reading: CounterReading


@dataclasses.dataclass(frozen=True)
class Recorded:
    result: RecordResult
    reservation_settled: bool
    counters: list[RecordedCounter]


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
        async with self.db.connection() as conn, conn.pipeline():
            async with conn.transaction():
                claims, plans, first_answers, counters = await self._write(conn, items)
            readings = await _readings(counters)  # read after COMMIT was queued with the writes
        return self._answers(items, claims, plans, first_answers, readings)

    async def _write(self, conn, items: list[RecordItem]) -> tuple:
        """Claims, settlements and writes of one batch, in its transaction; the counters' cursor is
        read by the caller once COMMIT is queued."""
        claims = await self._claim(conn, items)
        owners: dict[tuple[str, str], int] = {}
        for index, item in enumerate(items):
            key = (item.tenant_id, item.call.call_id)
            if key in claims and key not in owners:
                owners[key] = index
        owner_items = sorted(owners.values())
        settled = await self._settle(conn, [items[i] for i in owner_items])

        deltas: dict[CounterKey, list[int]] = defaultdict(lambda: [0, 0])  # used, reserved
        plans: dict[int, tuple[bool, CallInput, int, list[tuple[Limit, str, int, CounterKey]]]] = {}
        for i in owner_items:
            item = items[i]
            occurred_at = claims[(item.tenant_id, item.call.call_id)][0]
            reservation = settled.get((item.tenant_id, item.call.reservation_id)) if item.call.reservation_id else None
            if reservation is not None and reservation["named_by"] != item.call.call_id:
                reservation = None  # another call of this batch settled it first
            if reservation is not None and reservation["state"] == "released":
                # Taken for another subject, provider, model or operation: its hold is given back and
                # the call is charged to its own counters, like a plain call (see _settle).
                for c in reservation["charges"]:
                    key = (item.tenant_id, c["limit_id"], c["generation"], c["partition"],
                           dt.datetime.fromisoformat(c["window_start"]))  # fmt: skip
                    deltas[key][1] -= c["amount"]
                reservation = None
            plans[i] = self._plan(item, occurred_at, reservation, deltas)

        owned = [(items[i], plans[i], claims[(items[i].tenant_id, items[i].call.call_id)]) for i in owner_items]
        counters = await self._apply(conn, deltas, owned)
        duplicates = [i for i in range(len(items)) if i not in plans]
        first_answers = await self._first_answers(conn, [items[i] for i in duplicates]) if duplicates else {}
        return claims, plans, first_answers, counters

    def _answers(self, items, claims, plans, first_answers, readings) -> list[Recorded | MeterError]:
        out: list[Recorded | MeterError] = []
        for index, item in enumerate(items):
            if index in plans:
                was_settled, stored, cost, charged, parts = plans[index]
                claim = claims[(item.tenant_id, item.call.call_id)]
                result = RecordResult(item.call.call_id, False, cost, item.cost_source, item.price_id, claim[1], parts)
                counters = [RecordedCounter(lim, part, amount, readings[key]) for lim, part, amount, key in charged]
                out.append(Recorded(result, was_settled, counters))
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

    async def _claim(self, conn, items: list[RecordItem]) -> dict[tuple[str, str], tuple[dt.datetime, dt.datetime]]:
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

    async def _settle(self, conn, items: list[RecordItem]) -> dict[tuple[str, str], dict]:
        """End the live reservations these calls name (locked in key order); reservation → row.

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
                     FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[],
                                 %s::text[], %s::text[])
                       WITH ORDINALITY AS u(t, id, c, a, s, p, m, op, o) ORDER BY t, id, o
               ), locked AS (
                   SELECT r.tenant_id, r.id FROM reservations r JOIN wanted w ON (r.tenant_id, r.id) = (w.t, w.id)
                    WHERE r.state = 'active' ORDER BY r.tenant_id, r.id FOR UPDATE OF r
               ), matched AS (
                   SELECT w.*, (r.subject, r.provider, r.model, r.operation) = (w.s, w.p, w.m, w.op) AS same
                     FROM locked l JOIN wanted w ON (w.t, w.id) = (l.tenant_id, l.id)
                     JOIN reservations r ON (r.tenant_id, r.id) = (l.tenant_id, l.id)
               )
               UPDATE reservations r
                  SET state = CASE WHEN w.same THEN 'settled' ELSE 'released' END,
                      ended_at = coalesce(w.a, now()), call_id = CASE WHEN w.same THEN w.c END
                 FROM matched w
                WHERE (r.tenant_id, r.id) = (w.t, w.id)
               RETURNING r.tenant_id, r.id, w.c AS named_by, r.state, r.estimate, r.charges, r.cost_nanos""",
            tuple([w[k] for w in wanted] for k in range(8)),
        )
        return {(r["tenant_id"], r["id"]): r for r in await cur.fetchall()}

    @staticmethod
    def _plan(item: RecordItem, occurred_at: dt.datetime, reservation: dict | None, deltas) -> tuple:
        """(settled, call as stored, cost, [(limit, partition, amount, counter key)], cost parts) and its deltas."""
        charged = []
        if reservation is None:
            for charge in item.charges:
                key = (item.tenant_id, charge.limit.id, charge.limit.generation, charge.partition,
                       window_start(charge.limit.window, occurred_at))  # fmt: skip
                deltas[key][0] += charge.amount
                charged.append((charge.limit, charge.partition, charge.amount, key))
            return False, item.call, item.cost_nanos, charged, item.cost_parts
        use_estimate = not item.call.usage_given
        for c in reservation["charges"]:
            key = (
                item.tenant_id,
                c["limit_id"],
                c["generation"],
                c["partition"],
                dt.datetime.fromisoformat(c["window_start"]),
            )
            amount = c["amount"] if use_estimate else item.actual.amount_for(Metric(c["metric"]))
            deltas[key][0] += amount
            deltas[key][1] -= c["amount"]
            limit = item.limits.get(c["limit_id"])
            if limit is not None:  # a limit deleted since the reservation is still settled, not reported
                charged.append((limit, c["partition"], amount, key))
        if use_estimate:
            # No figures: the call is charged (and shown) as what was reserved for it.
            estimate = reservation["estimate"]
            stored = dataclasses.replace(
                item.call,
                input_tokens=estimate.get("input_tokens", 0),
                output_tokens=estimate.get("max_output_tokens", 0),
                cached_read_tokens=estimate.get("cached_read_tokens", 0),
                requests=estimate.get("requests", 1),
                units=estimate.get("units", 0),
            )
            # The reserved cost is charged as it was: the breakdown shows it as `other`.
            return True, stored, reservation["cost_nanos"], charged, CostBreakdown(other=reservation["cost_nanos"])
        return True, item.call, item.cost_nanos, charged, item.cost_parts

    async def _apply(self, conn, deltas: dict, owned: list):
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
                (json_rows(("t", "l", "g", "p", "w", "used", "reserved"), [(*k, *deltas[k]) for k in keys]),),
            )
        rows = []
        for item, (_, stored, cost, _, parts), claim in owned:
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
        summed = _rollup_deltas(owned)
        for table in rollups.TABLES:
            if table.from_previous is not None:
                summed = rollups.fold(summed, table.from_previous)
            if summed:
                rows = [(*k, *summed[k]) for k in sorted(summed)]
                await conn.execute(table.upsert_sql, (json_rows(table.json_columns, rows),))
        corrected = [
            (cost, list(parts.as_tuple()), item.tenant_id, item.call.call_id)
            for item, (_, _, cost, _, parts), _ in owned
            if cost != item.cost_nanos or parts != item.cost_parts
        ]
        if corrected:
            await conn.cursor().executemany(
                "UPDATE call_ids SET cost_nanos = %s, cost_parts = %s WHERE tenant_id = %s AND call_id = %s", corrected
            )
        return counters_cur

    async def _first_answers(self, conn, items: list[RecordItem]) -> dict[tuple[str, str], dict]:
        cur = await conn.execute(
            """SELECT tenant_id, call_id, content_hash, cost_nanos, cost_source, price_id, recorded_at, cost_parts
                 FROM call_ids
                WHERE (tenant_id, call_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
            ([i.tenant_id for i in items], [i.call.call_id for i in items]),
        )
        return {(r["tenant_id"], r["call_id"]): r for r in await cur.fetchall()}


def _rollup_deltas(owned: list) -> dict[tuple, list]:
    """Per (tenant, hour, subject, provider, model, operation): summed figures, then sparse histogram."""
    out: dict[tuple, list] = {}
    for item, (_, stored, cost, _, parts), claim in owned:
        d = stored.dims
        hour = claim[0].replace(minute=0, second=0, microsecond=0)
        key = (item.tenant_id, hour, d.subject, d.provider, d.model, d.operation)
        row = out.get(key)
        if row is None:
            row = out[key] = [0] * 21 + [{}]
        latency = stored.latency_us
        for i, value in enumerate((
            1, 0 if stored.success else 1, stored.input_tokens, stored.output_tokens, stored.cached_read_tokens,
            stored.cache_write_tokens, stored.reasoning_tokens, stored.requests, stored.units, cost,
            1 if item.cost_source == "unpriced" else 0, 0 if latency is None else 1, latency or 0, *parts.as_tuple(),
        )):  # fmt: skip
            row[i] += value
        if latency is not None:
            b = str(histogram.bucket(latency))
            row[-1][b] = row[-1].get(b, 0) + 1
    return out


async def _readings(cursor) -> dict[CounterKey, CounterReading]:
    if cursor is None:
        return {}
    return {
        (r["tenant_id"], r["limit_id"], r["generation"], r["partition_key"], r["window_start"]): CounterReading(
            r["window_start"], r["used"], r["reserved"]
        )
        for r in await cursor.fetchall()
    }
