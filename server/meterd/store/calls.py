"""Recorded calls: the idempotency claim, the call row, and the usage read.

The claim, the call row and the counter changes share one transaction (the caller's): a retry is
counted once, and a crash between them leaves none of them (a claimed id without its call would
make the retry count zero times)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg
from psycopg.types.json import Jsonb

from meterd.domain.calls import CallInput
from meterd.domain.errors import AlreadyExists
from meterd.store.db import Database


@dataclasses.dataclass(frozen=True)
class RecordResult:
    call_id: str
    duplicate: bool
    cost_nanos: int
    cost_source: str
    price_id: str
    recorded_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Claim:
    occurred_at: dt.datetime
    recorded_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class UsageTotals:
    calls: int
    successes: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    cost_nanos: int
    unpriced_calls: int
    latency_sum_us: int
    latency_count: int


class CallStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, conn: psycopg.AsyncConnection, tenant_id: str, call: CallInput, at: dt.datetime | None
    ) -> Claim | None:
        """Take the call_id for this call; None when it was taken before (concurrent claims of one id
        wait for the first to commit or roll back). The call happened at call.occurred_at, else `at`,
        else the database's now."""
        cur = await conn.execute(
            """INSERT INTO call_ids (tenant_id, call_id, occurred_at, content_hash, cost_nanos, cost_source)
               VALUES (%s, %s, coalesce(%s, now()), %s, 0, '')
               ON CONFLICT (tenant_id, call_id) DO NOTHING
               RETURNING occurred_at, recorded_at""",
            (tenant_id, call.call_id, call.occurred_at or at, call.fingerprint()),
        )
        row = await cur.fetchone()
        return Claim(row["occurred_at"], row["recorded_at"]) if row else None

    async def first_answer(self, conn: psycopg.AsyncConnection, tenant_id: str, call: CallInput) -> RecordResult:
        cur = await conn.execute(
            """SELECT content_hash, cost_nanos, cost_source, price_id, recorded_at FROM call_ids
               WHERE tenant_id = %s AND call_id = %s""",
            (tenant_id, call.call_id),
        )
        first = await cur.fetchone()
        if bytes(first["content_hash"]) != call.fingerprint():
            raise AlreadyExists(
                f"call_id {call.call_id!r} was already recorded with different content; "
                "use a new call_id for a new call and the same content for a retry"
            )
        return RecordResult(
            call.call_id, True, first["cost_nanos"], first["cost_source"], first["price_id"], first["recorded_at"]
        )

    async def insert(
        self,
        conn: psycopg.AsyncConnection,
        tenant_id: str,
        api_key_id: str,
        call: CallInput,
        claim: Claim,
        cost_nanos: int,
        cost_source: str,
        price_id: str,
    ) -> None:
        """The call row, and the answer a retry of this call_id gets."""
        d = call.dims
        await conn.execute(
            """INSERT INTO calls (tenant_id, call_id, occurred_at, recorded_at, api_key_id, reservation_id,
                   subject, provider, model, operation, labels, metadata,
                   input_tokens, output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
                   requests, units, latency_us, ttft_us, retry_count, success, error_code, error_message,
                   cost_nanos, cost_source, price_id)
               VALUES (%s, %s, %s, %s, %s, nullif(%s, ''), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                       %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                tenant_id, call.call_id, claim.occurred_at, claim.recorded_at, api_key_id,
                call.reservation_id, d.subject, d.provider, d.model, d.operation, Jsonb(d.labels),
                Jsonb(call.metadata), call.input_tokens, call.output_tokens, call.cached_read_tokens,
                call.cache_write_tokens, call.reasoning_tokens, call.requests, call.units, call.latency_us,
                call.ttft_us, call.retry_count, call.success, call.error_code, call.error_message,
                cost_nanos, cost_source, price_id,
            ),
        )  # fmt: skip
        await conn.execute(
            "UPDATE call_ids SET cost_nanos = %s, cost_source = %s, price_id = %s WHERE tenant_id = %s AND call_id = %s",
            (cost_nanos, cost_source, price_id, tenant_id, call.call_id),
        )

    async def totals(self, tenant_id: str, start: dt.datetime, end: dt.datetime) -> UsageTotals:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT count(*) AS calls,
                          count(*) FILTER (WHERE success) AS successes,
                          count(*) FILTER (WHERE NOT success) AS errors,
                          coalesce(sum(input_tokens), 0) AS input_tokens,
                          coalesce(sum(output_tokens), 0) AS output_tokens,
                          coalesce(sum(cached_read_tokens), 0) AS cached_read_tokens,
                          coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
                          coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
                          coalesce(sum(requests), 0) AS requests,
                          coalesce(sum(units), 0) AS units,
                          coalesce(sum(cost_nanos), 0) AS cost_nanos,
                          count(*) FILTER (WHERE cost_source = 'unpriced') AS unpriced_calls,
                          coalesce(sum(latency_us), 0) AS latency_sum_us,
                          count(latency_us) AS latency_count
                   FROM calls WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at < %s""",
                (tenant_id, start, end),
            )
            row = await cur.fetchone()
        return UsageTotals(**{k: int(v) for k, v in row.items()})
