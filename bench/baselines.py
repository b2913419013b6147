"""Database-side baselines and the analytics scenario for `make bench`."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Callable

import grpc
import psycopg
from google.protobuf import timestamp_pb2
from psycopg.types.json import Jsonb

from bench.labels import label_requests, label_rollups_backfilled
from bench.measure import Result, open_loop, percentile
from meterd.domain import histogram

BATCH = 1000


async def write_records(conn, ids: list[str], subjects: list[str], latency: list[int]) -> None:
    """The rows a record batch writes for these calls (call id, call, three counter upserts and the
    three rollup grains per call, pre-summed per key), as plain multi-row statements."""
    n = len(ids)
    await conn.execute(
        """INSERT INTO call_ids (tenant_id, call_id, occurred_at, content_hash, cost_nanos, cost_source)
           SELECT 'baseline', c, now(), '\\x00', 5000000, 'catalog' FROM unnest(%s::text[]) c ORDER BY c""",
        (ids,),
    )
    await conn.execute(
        """INSERT INTO calls (tenant_id, call_id, occurred_at, api_key_id, subject, provider, model,
               operation, input_tokens, output_tokens, cached_read_tokens, latency_us, success,
               cost_nanos, cost_source)
           SELECT 'baseline', c, now(), 'k', s, 'openai', 'gpt-4.1', 'chat', 700, 300, 100, l, true,
                  5000000, 'catalog'
             FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(c, s, l)""",
        (ids, subjects, latency),
    )
    per_subject: dict[str, int] = {}
    for subject in subjects:
        per_subject[subject] = per_subject.get(subject, 0) + 1
    keys = sorted(per_subject)
    await conn.execute(
        """INSERT INTO counters AS c (tenant_id, limit_id, generation, partition_key, window_start, used)
           SELECT 'baseline', l, 1, p, date_trunc('minute', now()), n
             FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(l, p, n) ORDER BY 1, 2, 3, 4, 5
           ON CONFLICT (tenant_id, limit_id, generation, partition_key, window_start)
           DO UPDATE SET used = c.used + excluded.used""",
        (["per-user"] * len(keys) + ["daily-tokens", "hourly-cost"],
         keys + ["", ""], [per_subject[k] for k in keys] + [n * 1000, n * 5_000_000]),
    )  # fmt: skip
    buckets: dict[str, dict[str, int]] = {}
    for subject, us in zip(subjects, latency, strict=True):
        b = buckets.setdefault(subject, {})
        key = str(histogram.bucket(us))
        b[key] = b.get(key, 0) + 1
    await conn.execute(
        """INSERT INTO usage_hourly AS h (tenant_id, hour, subject, provider, model, operation, calls,
               input_tokens, output_tokens, cost_nanos, latency_count, latency_sum_us, latency_hist)
           SELECT 'baseline', date_trunc('hour', now()), s, 'openai', 'gpt-4.1', 'chat', n, n * 700,
                  n * 300, n * 5000000, n, n * 500000, hs
             FROM unnest(%s::text[], %s::bigint[], %s::jsonb[]) AS u(s, n, hs) ORDER BY s
           ON CONFLICT (tenant_id, hour, subject, provider, model, operation) DO UPDATE SET
               calls = h.calls + excluded.calls, input_tokens = h.input_tokens + excluded.input_tokens,
               output_tokens = h.output_tokens + excluded.output_tokens,
               cost_nanos = h.cost_nanos + excluded.cost_nanos,
               latency_count = h.latency_count + excluded.latency_count,
               latency_sum_us = h.latency_sum_us + excluded.latency_sum_us,
               latency_hist = meter_sparse_hist_add_v2(h.latency_hist, excluded.latency_hist)""",
        (keys, [per_subject[k] for k in keys], [Jsonb(buckets[k]) for k in keys]),
    )
    every = {}
    for b in buckets.values():
        for k, n in b.items():
            every[k] = every.get(k, 0) + n
    for table, t in (("usage_model_hourly", "hour"), ("usage_model_daily", "day")):
        await conn.execute(
            f"""INSERT INTO {table} AS h (tenant_id, {t}, provider, model, operation, calls, input_tokens,
                    output_tokens, cost_nanos, latency_count, latency_sum_us, latency_buckets)
                VALUES ('baseline', date_trunc('{t}', now()), 'openai', 'gpt-4.1', 'chat', %(n)s::bigint,
                        %(n)s::bigint * 700, %(n)s::bigint * 300, %(n)s::bigint * 5000000, %(n)s::bigint,
                        %(n)s::bigint * 500000,
                        meter_hist_add_sparse(NULL, %(hs)s))
                ON CONFLICT (tenant_id, {t}, provider, model, operation) DO UPDATE SET
                    calls = h.calls + excluded.calls, input_tokens = h.input_tokens + excluded.input_tokens,
                    output_tokens = h.output_tokens + excluded.output_tokens,
                    cost_nanos = h.cost_nanos + excluded.cost_nanos,
                    latency_count = h.latency_count + excluded.latency_count,
                    latency_sum_us = h.latency_sum_us + excluded.latency_sum_us,
                    latency_buckets = meter_hist_add(h.latency_buckets, excluded.latency_buckets)""",
            {"n": n, "hs": Jsonb(every)},
        )


async def database_batched_upserts(url: str, seconds: float) -> Result:
    """What PostgreSQL itself sustains for the rows a record batch writes, from a plain psycopg loop,
    1,000 calls per transaction: the yardstick for batch recording."""
    rng = random.Random(5)
    written = 0
    latencies = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES ('baseline') ON CONFLICT DO NOTHING")
        await conn.commit()
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ids = [uuid.uuid4().hex for _ in range(BATCH)]
            subjects = [f"user:{rng.randrange(10_000)}" for _ in range(BATCH)]
            latency = [rng.randrange(100_000, 900_000) for _ in range(BATCH)]
            async with conn.transaction():
                await write_records(conn, ids, subjects, latency)
            written += BATCH
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Result("PostgreSQL batched upserts, same rows (baseline)", 1, written, elapsed,
                  percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3, 0,
                  note=f"{BATCH} calls per transaction, plain psycopg")  # fmt: skip


# Other tenants' calls for prefill (the measured tenant's data set is bench/dataset.py): a conversation
# lives one hour, 12 bots; 2% of calls fail with one of four error codes; every 7th call retried once.
GENERATE_CALLS = """
INSERT INTO calls (tenant_id, call_id, occurred_at, recorded_at, api_key_id, subject, provider, model, operation,
                   input_tokens, output_tokens, cached_read_tokens, requests, latency_us, success, cost_nanos,
                   cost_source, labels, error_code, retry_count)
SELECT %(tenant)s, 'gen-' || g, t, now(), 'gen', 'user:' || (g %% 1000),
       'openai', (ARRAY['gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-nano', 'gpt-4o', 'gpt-4o-mini', 'o3', 'o4-mini',
                        'gpt-4'])[1 + g %% 8],
       (ARRAY['chat', 'embedding', 'tool'])[1 + g %% 3], (random() * 2000)::int, (random() * 800)::int,
       (random() * 300)::int, 1, (50000 + random() * 3000000)::bigint, ok,
       (random() * 20000000)::bigint, 'catalog',
       jsonb_build_object('conversation', 'conv-' || (extract(epoch FROM t)::bigint / 3600) || '-' || (g %% 20),
                          'bot', 'bot-' || (g %% 12), 'bot_raw', 'bot-' || (g %% 12)),
       CASE WHEN ok THEN '' ELSE (ARRAY['429', '500', '503', 'timeout'])[1 + g %% 4] END, (g %% 7 = 0)::int
  FROM (SELECT g, now() - interval '1 hour' - random() * interval '29 days' AS t, random() > 0.02 AS ok
          FROM generate_series(1, %(n)s) AS g) s
"""


async def usage_queries(url: str, meter, auth, n_calls: int, *, generate: bool = True) -> list[Result]:
    """GetUsage grouped by model and day over 30 days and the label scenarios, on n_calls generated
    calls with their rollups (bench/dataset.py; generate=False: already generated)."""
    from meter.v1 import meter_pb2

    if generate:
        import datetime as dt

        from bench.dataset import generate as generate_dataset

        made = await generate_dataset(url, "bench", n_calls, now=dt.datetime.now(dt.UTC))  # any-date: bench data
        print(f"  generated {n_calls:,} calls with every rollup in {made.seconds:.0f} s: {made.steps}",
              file=sys.stderr, flush=True)  # fmt: skip
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        backfill = await label_rollups_backfilled(url, conn, "bench")
        rollup_rows = (await (await conn.execute("SELECT count(*) FROM usage_hourly")).fetchone())[0]
        model_rows = (
            await (
                await conn.execute(
                    "SELECT (SELECT count(*) FROM usage_model_hourly) + (SELECT count(*) FROM usage_model_daily)"
                )
            ).fetchone()
        )[0]

    end = timestamp_pb2.Timestamp()
    end.GetCurrentTime()
    start = timestamp_pb2.Timestamp(seconds=end.seconds - 30 * 86400)
    request = meter_pb2.GetUsageRequest(
        start=start, end=end, group_by=[meter_pb2.GROUP_BY_MODEL, meter_pb2.GROUP_BY_TIME],
        time_bucket=meter_pb2.TIME_BUCKET_DAY,
    )  # fmt: skip
    results = []
    for name, req in (
        ("GetUsage by model and day, 30 days", request),
        ("GetUsage by provider with projection, 30 days", meter_pb2.GetUsageRequest(
            start=start, end=end, group_by=[meter_pb2.GROUP_BY_PROVIDER], include_projection=True)),
        ("GetUsage top 10 users by cost, 30 days", meter_pb2.GetUsageRequest(
            start=start, end=end, group_by=[meter_pb2.GROUP_BY_SUBJECT], order_by=meter_pb2.USAGE_ORDER_COST,
            descending=True, limit=10)),
        # The same with the bench tenant's 3 limits' statuses (one of them per subject: user:1's counter).
        ("GetUsage top 10 users by cost, 30 days, include_limits", meter_pb2.GetUsageRequest(
            start=start, end=end, group_by=[meter_pb2.GROUP_BY_SUBJECT], order_by=meter_pb2.USAGE_ORDER_COST,
            descending=True, limit=10, include_limits=True)),
        ("GetUsage user:1 by model, 30 days, include_limits", meter_pb2.GetUsageRequest(
            start=start, end=end, group_by=[meter_pb2.GROUP_BY_MODEL], filter=meter_pb2.UsageFilter(subject="user:1"),
            include_limits=True)),
        *label_requests(start, end),
    ):  # fmt: skip
        latencies = []
        note = f"{n_calls:,} calls, {rollup_rows:,} subject rollup rows, {model_rows:,} model rollup rows"
        t_start = time.perf_counter()
        try:
            await meter.GetUsage(req, metadata=auth)  # warm caches
            # Raw-call answers take seconds at millions of calls: one timed sample is enough to compare.
            least = 1 if "raw calls" in name else 3
            while len(latencies) < 50 and (len(latencies) < least or time.perf_counter() - t_start < 30):
                t = time.perf_counter()
                reply = await meter.GetUsage(req, metadata=auth)
                latencies.append(time.perf_counter() - t)
            assert reply.totals.calls >= n_calls or "7 days" in name or "user:1" in name
        except grpc.aio.AioRpcError as exc:
            note += f"; failed: {exc.code().name} {exc.details()}"
        latencies.sort()
        results.append(Result(name, 1, len(latencies), time.perf_counter() - t_start, percentile(latencies, 0.5) * 1e3,
                              percentile(latencies, 0.99) * 1e3, 0 if latencies else 1, note=note))  # fmt: skip
    results.append(backfill)
    return results


# ---- per-scenario baselines: the rows a Meter scenario writes, done by plain psycopg ------------------

GROUP = 32  # requests per transaction: what Meter's group commit carries at concurrency 32
COUNTER_KEYS = """unnest(%(limits)s::text[], %(parts)s::text[], %(units)s::text[], %(n)s::bigint[]) AS k(l, p, u, n)"""


def _counter_keys(subjects: list[str], amount: int) -> dict:
    """The three counters of the bench's limits for these requests, pre-summed per key, in key order."""
    summed: dict[tuple[str, str, str], int] = {}
    for subject in subjects:
        for key in (("daily-tokens", "", "day"), ("hourly-cost", "", "hour"), ("per-user", subject, "minute")):
            summed[key] = summed.get(key, 0) + amount
    keys = sorted(summed)
    return {"limits": [k[0] for k in keys], "parts": [k[1] for k in keys], "units": [k[2] for k in keys],
            "n": [summed[k] for k in keys]}  # fmt: skip


CHECK_ONLY = f"""SELECT c.used, c.reserved FROM {COUNTER_KEYS}
  JOIN counters c ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
                   = ('baseline', k.l, 1, k.p, date_trunc(k.u, now(), 'UTC'))"""
RESERVE_COUNTERS = f"""INSERT INTO counters AS c (tenant_id, limit_id, generation, partition_key, window_start, reserved)
SELECT 'baseline', k.l, 1, k.p, date_trunc(k.u, now(), 'UTC'), k.n FROM {COUNTER_KEYS}
ON CONFLICT (tenant_id, limit_id, generation, partition_key, window_start)
DO UPDATE SET reserved = c.reserved + excluded.reserved RETURNING c.used, c.reserved"""
RESERVE_ROWS = """INSERT INTO reservations (tenant_id, id, api_key_id, subject, provider, model, operation, estimate,
                          charges, cost_nanos, expires_at)
SELECT 'baseline', r, 'k', s, 'openai', 'gpt-4.1', 'chat', '{"input_tokens": 800, "max_output_tokens": 400}',
       '[{"limit": "daily-tokens", "amount": 1200}, {"limit": "per-user", "amount": 1},
         {"limit": "hourly-cost", "amount": 6000000}]', 6000000, now() + interval '10 minutes'
  FROM unnest(%(ids)s::text[], %(subjects)s::text[]) AS u(r, s)"""
SETTLE_ROWS = """UPDATE reservations SET state = 'settled', ended_at = now(), call_id = id
 WHERE tenant_id = 'baseline' AND id = ANY(%(ids)s::text[])"""


async def same_work(url: str, kind: str, hot: bool, seconds: float, db_cpu: Callable[[], float]) -> Result:
    """Plain psycopg doing the durable rows of one Meter scenario, GROUP requests per transaction, one
    connection (as Meter's one batch transaction in flight per kind): `check_only` reads the three
    counters, `reserve` inserts the reservation and adds to the counters, `record` writes what a record
    writes, `pair` a reserve then a settling record (two transactions, as the two RPCs). db_cpu reads
    PostgreSQL's CPU seconds; it is read while the connection is open (an ended backend not yet reaped
    by the postmaster is counted nowhere)."""
    rng = random.Random(7)
    done = 0
    latencies = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES ('baseline') ON CONFLICT DO NOTHING")
        await conn.commit()
        cpu_before = db_cpu()
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            subjects = ["user:hot" if hot else f"user:{rng.randrange(10_000)}" for _ in range(GROUP)]
            ids = [uuid.uuid4().hex for _ in range(GROUP)]
            if kind == "check_only":
                async with conn.transaction():
                    await (await conn.execute(CHECK_ONLY, _counter_keys(subjects, 1))).fetchall()
            if kind in ("reserve", "pair"):
                async with conn.transaction():
                    await conn.execute(RESERVE_ROWS, {"ids": ids, "subjects": subjects})
                    await (await conn.execute(RESERVE_COUNTERS, _counter_keys(subjects, 1))).fetchall()
            if kind in ("record", "pair"):
                async with conn.transaction():
                    if kind == "pair":
                        await conn.execute(SETTLE_ROWS, {"ids": ids})
                        await conn.execute(RESERVE_COUNTERS, _counter_keys(subjects, -1))  # the reservation off
                    await write_records(conn, ids, subjects, [rng.randrange(100_000, 900_000) for _ in ids])
            done += GROUP
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        cpu = db_cpu() - cpu_before
    latencies.sort()
    return Result(f"PostgreSQL same work: {kind}{', hot' if hot else ''}", 1, done, elapsed,
                  percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3, 0,
                  note=f"{GROUP} per transaction, plain psycopg", db_cpu_s_per_k=cpu * 1000 / max(done, 1))  # fmt: skip


async def reserve_at_rate(url: str, rate: float, seconds: float) -> Result:
    """A RESERVE's durable rows as plain psycopg, group-committed like Meter (one transaction in
    flight, carrying every request queued meanwhile), with requests started at `rate` whatever the
    latency (open loop): what the database alone takes to make them durable at that load, with the
    tenant-wide counter every RESERVE updates. Echo's p99 plus this p99 is what the transport and the
    database leave a RESERVE's p99."""
    rng = random.Random(11)
    queue: list[tuple[str, asyncio.Future[int]]] = []
    wake = asyncio.Event()

    async def commit_queued(conn: psycopg.AsyncConnection) -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch, queue[:] = queue[:], []
            if not batch:
                continue
            subjects = [subject for subject, _ in batch]
            async with conn.pipeline(), conn.transaction():
                await conn.execute(RESERVE_ROWS, {"ids": [uuid.uuid4().hex for _ in batch], "subjects": subjects})
                await (await conn.execute(RESERVE_COUNTERS, _counter_keys(subjects, 1))).fetchall()
            for _, done in batch:
                done.set_result(1)

    async def one(i: int) -> int:
        done = asyncio.get_running_loop().create_future()
        queue.append((f"user:{rng.randrange(10_000)}", done))
        wake.set()
        return await done

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES ('baseline') ON CONFLICT DO NOTHING")
        worker = asyncio.create_task(commit_queued(conn))
        try:
            result = await open_loop("PostgreSQL same work: reserve, at half load", one, rate, seconds)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    result.note = f"group-committed plain psycopg, {result.note}"
    return result


PREFILL = (
    "INSERT INTO tenants (id) SELECT 'fill-' || g FROM generate_series(0, 99) g ON CONFLICT DO NOTHING",
    # Counters of other tenants and of past windows, as months of traffic leave them.
    """INSERT INTO counters (tenant_id, limit_id, generation, partition_key, window_start, used)
       SELECT 'fill-' || (g %% 100), 'per-user', 1, 'user:' || g,
              date_trunc('minute', now()) - (g %% 1440) * interval '1 minute', g %% 1000
         FROM generate_series(1, %(counters)s) g ON CONFLICT DO NOTHING""",
)


async def prefill(url: str, counters: int, calls: int) -> str:
    """Fill the database like a long-running one (counters and calls of other tenants), then let
    PostgreSQL analyse it as autovacuum would have: plans are made on realistic statistics."""
    t0 = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SET synchronous_commit = off")  # bulk load only; not what is measured
        for sql in PREFILL:
            await conn.execute(sql, {"counters": counters})
        for tenant in range(10):
            await conn.execute(GENERATE_CALLS, {"tenant": f"fill-{tenant}", "n": calls // 10})
        for table in ("counters", "calls", "call_ids", "reservations", "usage_hourly"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        # Write the prefill's dirty pages out now: left to the next checkpoint, that writeback (and its
        # fsyncs) lands inside the first scenarios and stalls every commit for hundreds of milliseconds.
        await conn.execute("CHECKPOINT")
    return f"prefilled {counters:,} counters and {calls:,} calls in {time.perf_counter() - t0:.0f}s"
