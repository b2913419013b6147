"""The SQL of RepriceCalls: read a tenant's recorded calls in chunks and write corrected costs to the
calls, their first answers (call_ids), the hourly rollups and the cost counters, in one transaction."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from psycopg.types.json import Jsonb

from meterd.domain.pricing import CostBreakdown, UsageAmounts
from meterd.domain.records import CounterKey
from meterd.domain.repricing import LabelCallKey, NewCost, SettledCharge, StoredCall
from meterd.store import label_rollups, rollups
from meterd.store.db import Conn, Database
from meterd.store.rollups import HourlyKey

__all__ = ["NewCost", "RepriceStore", "RepriceTransaction", "SettledCharge", "StoredCall"]  # types: domain.repricing


_CALL_COLUMNS = """occurred_at, call_id, api_key_id, coalesce(reservation_id, '') AS reservation_id, subject, provider,
                   model, operation, labels, input_tokens, output_tokens, cached_read_tokens, cache_write_tokens,
                   requests, units, cost_nanos, cost_source, price_id, cost_parts, service_tier, success,
                   error_code"""


def _call(row: dict) -> StoredCall:
    return StoredCall(
        occurred_at=row["occurred_at"],
        call_id=row["call_id"],
        api_key_id=row["api_key_id"],
        reservation_id=row["reservation_id"],
        subject=row["subject"],
        provider=row["provider"],
        model=row["model"],
        operation=row["operation"],
        labels=row["labels"] or {},
        usage=UsageAmounts(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cached_read_tokens=row["cached_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            requests=row["requests"],
            units=row["units"],
        ),
        cost_nanos=row["cost_nanos"],
        cost_source=row["cost_source"],
        price_id=row["price_id"],
        cost_parts=None if row["cost_parts"] is None else CostBreakdown.from_tuple(row["cost_parts"]),
        service_tier=row["service_tier"],
        success=row["success"],
        error_code=row["error_code"],
    )


class RepriceTransaction:
    """One tenant's reprice, inside one database transaction."""

    def __init__(self, conn: Conn, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    async def calls(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        provider: str,
        model: str,
        include_client_costs: bool,
        after: tuple[dt.datetime, str] | None,
        limit: int,
    ) -> list[StoredCall]:
        """The next `limit` calls with occurred_at in [start, end) after `after`, in key order.

        provider: exact (calls store it lower-cased); model: case-insensitive; "" matches all.
        Client-supplied costs are left out unless include_client_costs.
        """
        conditions = ["tenant_id = %s", "occurred_at >= %s", "occurred_at < %s"]
        params: list = [self.tenant_id, start, end]
        if after is not None:
            conditions.append("(occurred_at, call_id) > (%s, %s)")
            params += list(after)
        if provider:
            conditions.append("provider = %s")
            params.append(provider)
        if model:
            conditions.append("lower(model) = lower(%s)")
            params.append(model)
        if not include_client_costs:
            conditions.append("cost_source <> 'client'")
        cur = await self.conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE {' AND '.join(conditions)} "
            "ORDER BY occurred_at, call_id LIMIT %s",
            (*params, limit),
        )
        return [_call(row) for row in await cur.fetchall()]

    async def settled_charges(self, calls: list[StoredCall]) -> dict[str, list[SettledCharge]]:
        """call_id → the charges of the reservation it settled (calls that settled none are absent)."""
        wanted = sorted({c.reservation_id for c in calls if c.reservation_id})
        if not wanted:
            return {}
        cur = await self.conn.execute(
            """SELECT call_id, charges FROM reservations
                WHERE tenant_id = %s AND id = ANY(%s) AND state = 'settled' AND call_id IS NOT NULL""",
            (self.tenant_id, wanted),
        )
        out: dict[str, list[SettledCharge]] = {}
        for row in await cur.fetchall():
            out[row["call_id"]] = [
                SettledCharge(c["limit_id"], int(c["generation"]), c["partition"],
                              dt.datetime.fromisoformat(c["window_start"]), c["metric"])
                for c in row["charges"]
            ]  # fmt: skip
        return out

    async def update_calls(self, changes: list[NewCost]) -> None:
        """New cost, source and price id on the calls and on their first answers (what a retried
        RecordCall of the same call_id returns)."""
        if not changes:
            return
        changes = sorted(changes, key=lambda n: n.call.call_id)
        columns = (
            [n.call.occurred_at for n in changes],
            [n.call.call_id for n in changes],
            [n.cost_nanos for n in changes],
            [n.cost_source for n in changes],
            [n.price_id for n in changes],
            # unnest flattens a 2-D array: the parts travel as one jsonb array per call instead.
            Jsonb([list(n.cost_parts.as_tuple()) for n in changes]),
        )
        parts = "ARRAY(SELECT jsonb_array_elements_text(u.cp)::bigint)"
        await self.conn.execute(
            f"""UPDATE calls c SET cost_nanos = u.n, cost_source = u.s, price_id = u.p, cost_parts = {parts}
                 FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[], %s::text[], %s::text[],
                             ARRAY(SELECT jsonb_array_elements(%s))) AS u(o, id, n, s, p, cp)
                WHERE c.tenant_id = %s AND c.occurred_at = u.o AND c.call_id = u.id""",
            (*columns, self.tenant_id),
        )
        await self.conn.execute(
            f"""UPDATE call_ids c SET cost_nanos = u.n, cost_source = u.s, price_id = u.p, cost_parts = {parts}
                 FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[], %s::text[], %s::text[],
                             ARRAY(SELECT jsonb_array_elements(%s))) AS u(o, id, n, s, p, cp)
                WHERE c.tenant_id = %s AND c.call_id = u.id AND c.occurred_at = u.o""",
            (*columns, self.tenant_id),
        )

    async def add_to_counters(self, deltas: dict[CounterKey, int]) -> None:
        """Add to the `used` of counters that exist (never below 0), locked first in primary-key
        order like every other writer of counters, so this cannot deadlock with them."""
        keys = sorted(k for k, v in deltas.items() if v)
        if not keys:
            return
        columns = tuple(list(column) for column in zip(*keys, strict=True))
        amounts = [deltas[k] for k in keys]
        await self.conn.execute(
            """SELECT 1 FROM counters c
                 JOIN unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::timestamptz[]) AS d(t, l, g, p, w)
                   ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (d.t, d.l, d.g, d.p, d.w)
                ORDER BY c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start
                  FOR UPDATE OF c""",
            columns,
        )
        await self.conn.execute(
            """UPDATE counters c SET used = greatest(c.used + d.delta, 0)
                 FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::timestamptz[], %s::bigint[])
                      AS d(t, l, g, p, w, delta)
                WHERE (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (d.t, d.l, d.g, d.p, d.w)""",
            (*columns, amounts),
        )

    async def add_to_rollups(self, deltas: dict[HourlyKey, tuple[int, ...]]) -> None:
        """Add (cost, unpriced calls, *cost parts) to existing rollup rows of every grain, locked in
        key order like the record path writes them."""
        table_deltas: dict[tuple, tuple[int, ...]] = deltas
        for table in rollups.TABLES:
            if table.from_hourly is not None:
                table_deltas = rollups.fold_costs(deltas, table.from_hourly)
            keys = sorted(k for k, v in table_deltas.items() if any(v))
            if not keys:
                continue
            columns = tuple(list(column) for column in zip(*keys, strict=True))
            lock, update = table.reprice_sql
            await self.conn.execute(lock, columns)
            values = tuple(list(column) for column in zip(*(table_deltas[k] for k in keys), strict=True))
            await self.conn.execute(update, (*columns, *values))

    async def add_to_label_rollups(self, deltas: dict[LabelCallKey, tuple[int, ...]]) -> None:
        """Add (cost, unpriced calls, *cost parts) to the label and error-code rollup rows the calls
        were added to, hourly and daily (after add_to_rollups: the record path's lock order)."""
        await label_rollups.add_cost_deltas(self.conn, self.tenant_id, deltas)


class RepriceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def transaction(self, tenant_id: str) -> AsyncIterator[RepriceTransaction]:
        """One transaction; reprices of one tenant run one at a time (a second waits for the first),
        so both never apply a delta computed from the same old cost."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('meter_reprice/' || %s, 0))", (tenant_id,)
            )
            yield RepriceTransaction(conn, tenant_id)
