"""The quota engine's SQL: batched check/reserve, usage application, extension, expiry.

Each call is one statement (a function in migrations/0002_quota.sql; the check is meter_check_json,
made by 0018 and pointed at 0017's meter_check_v2 by 0020), so a CheckQuota batch costs one round
trip and one commit whatever the number of requests and matched limits.
"""

from __future__ import annotations

import datetime as dt

from psycopg.types.json import Jsonb

from meterd.domain.calls import Dimensions
from meterd.domain.limits import Limit, LimitAction, Metric, Usage
from meterd.domain.quota import CheckItem, CheckOutcome, CounterReading, Extended, ReservationState, ReservedCounter
from meterd.domain.windows import WindowKind
from meterd.store.codes import METRIC, RESERVATION_STATE_OF, WINDOW_KIND
from meterd.store.db import Database, json_rows, one

__all__ = ["CheckItem", "CheckOutcome", "Extended", "QuotaStore", "ReservedCounter"]  # the types live in domain.quota


_METRICS = tuple(Metric)

_CHECK_SQL = "SELECT * FROM meter_check_json(%s, %s, %s, %s)"  # migrations/0020_check_json_v2.sql
_REQUEST_COLUMNS = ("t", "rv", "id", "ci", "ttl", "k", "s", "p", "m", "op", "l", "e", "cost")
_KEY_COLUMNS = ("t", "lim", "g", "p", "kind", "secs")
_CHARGE_COLUMNS = ("req", "key", "metric", "amount", "mx", "deny")


class QuotaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def check(self, items: list[CheckItem], at: dt.datetime | None) -> list[CheckOutcome]:
        """Evaluate a batch in order in one transaction (at=None: the database clock)."""
        # One entry per distinct counter: within a batch a (tenant, limit, generation, partition) has
        # one window, so its start need not be known here (the database computes it from its clock).
        key_index: dict[tuple[str, str, int, str], int] = {}
        counters: list[tuple[str, str, int, str, str, int]] = []
        charge_rows: list[tuple[int, int, str, int, int, bool]] = []
        for index, item in enumerate(items, start=1):
            for charge in item.charges:
                lim = charge.limit
                identity = (item.tenant_id, lim.id, lim.generation, charge.partition)
                if identity not in key_index:
                    key_index[identity] = len(counters) + 1
                    counters.append(
                        (item.tenant_id, lim.id, lim.generation, charge.partition, WINDOW_KIND[lim.window.kind],
                         lim.window.seconds)
                    )  # fmt: skip
                charge_rows.append(
                    (index, key_index[identity], METRIC[lim.metric], charge.amount, lim.max, charge.enforced)
                )
        # One jsonb per table (json_rows): psycopg would adapt 25 arrays element by element in Python.
        requests = [
            (i.tenant_id, i.reserve, i.reservation_id, i.client_reservation_id, int(i.ttl.total_seconds() * 1000),
             i.api_key_id, i.dims.subject, i.dims.provider, i.dims.model, i.dims.operation, i.dims.labels,
             i.estimate.to_json(), i.cost_nanos)
            for i in items
        ]  # fmt: skip
        params = (
            at,
            json_rows(_REQUEST_COLUMNS, requests),
            json_rows(_KEY_COLUMNS, counters),
            json_rows(_CHARGE_COLUMNS, charge_rows),
        )
        async with self.db.connection() as conn:
            cur = await conn.execute(_CHECK_SQL, params)
            rows = await cur.fetchall()
        by_request: dict[int, list[dict]] = {}
        for row in rows:
            by_request.setdefault(row["req"], []).append(row)
        outcomes = []
        for index in range(1, len(items) + 1):
            request_rows = by_request[index]
            first = request_rows[0]
            readings = [
                CounterReading(r["window_start"], r["used"], r["reserved"], r["prev_used"], r["prev_reserved"])
                for r in request_rows
                if r["charge"] is not None
            ]
            outcomes.append(
                CheckOutcome(first["allowed"], first["existing"], first["at"], first["expires_at"], readings)
            )
        return outcomes

    async def extend(
        self,
        *,
        tenant_id: str,
        at: dt.datetime | None,
        reservation_id: str,
        amounts: Usage,
        ttl: dt.timedelta,
        limits: list[Limit],
    ) -> Extended:
        deny = [limit for limit in limits if limit.action is LimitAction.DENY]
        sliding = {limit.id: limit.window.seconds for limit in limits if limit.window.kind is WindowKind.SLIDING}
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM meter_extend(%s, %s, %s, %s, %s, %s::text[], %s::bigint[], %s)",
                (
                    tenant_id, at, reservation_id, Jsonb({METRIC[m]: amounts.amount_for(m) for m in _METRICS}),
                    int(ttl.total_seconds() * 1000), [d.id for d in deny], [d.max for d in deny], Jsonb(sliding),
                ),
            )  # fmt: skip
            rows = await cur.fetchall()
            if not rows:
                # meter_extend returns one row per charged counter: none for a live reservation that
                # matched no limit, which it has extended all the same (found by tests/e2e/test_fuzz.py).
                cur = await conn.execute(
                    """SELECT true AS found, true AS allowed, NULL AS limit_id, expires_at, cost_nanos
                         FROM reservations WHERE tenant_id = %s AND id = %s AND state = 'active'""",
                    (tenant_id, reservation_id),
                )
                rows = await cur.fetchall()
        if not rows or not rows[0]["found"]:
            return Extended(False, False, None, 0, [])
        first = rows[0]
        return Extended(
            found=True,
            allowed=first["allowed"],
            expires_at=first["expires_at"],
            cost_nanos=first["cost_nanos"],
            counters=[
                ReservedCounter(
                    r["limit_id"],
                    r["partition_key"],
                    CounterReading(r["window_start"], r["used"], r["reserved"], r["prev_used"], r["prev_reserved"]),
                )
                for r in rows
                if r["limit_id"] is not None
            ],
        )

    async def release(self, tenant_id: str, reservation_id: str, at: dt.datetime | None) -> bool:
        """Give a live reservation back; False when it was not live."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT meter_release_reservation(%s, %s, %s) AS released", (tenant_id, at, reservation_id)
            )
            return (await one(cur))["released"]

    async def expire(self, at: dt.datetime | None, batch: int = 1000) -> int:
        """Release reservations past their TTL; returns how many expired."""
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT meter_expire_reservations(%s, %s) AS n", (at, batch))
            return (await one(cur))["n"]

    async def reservation_dims(self, tenant_id: str, reservation_id: str) -> Dimensions | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT subject, provider, model, operation, labels FROM reservations WHERE tenant_id = %s AND id = %s",
                (tenant_id, reservation_id),
            )
            row = await cur.fetchone()
        return Dimensions(**row) if row else None

    async def reservation_state(self, tenant_id: str, reservation_id: str) -> ReservationState | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT state FROM reservations WHERE tenant_id = %s AND id = %s", (tenant_id, reservation_id)
            )
            row = await cur.fetchone()
        return RESERVATION_STATE_OF[row["state"]] if row else None
