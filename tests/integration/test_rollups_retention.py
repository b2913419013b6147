"""Hourly rollups agree with the raw calls they summarise (and the coarser grains with them); retention drops whole old months only."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.dates import FIXED_NOWS, date_id
from meter_testing.fixtures import running_server
from meter_testing.processes import METER
from meter_testing.requests import record
from meter_testing.rollups import assert_rollup_grains_agree
from meterd.domain import histogram
from meterd.store.migrate import migrate
from meterd.store.rollups import PART_COLUMNS

ROLLUP_SUMS = """SELECT tenant_id, hour, subject, provider, model, operation, calls, errors, input_tokens, output_tokens,
                        cached_read_tokens, cache_write_tokens, reasoning_tokens, requests, units, cost_nanos::bigint,
                        unpriced_calls, latency_count, latency_sum_us::bigint, latency_hist, ARRAY[{parts}]::bigint[]
                   FROM usage_hourly ORDER BY 1, 2, 3, 4, 5, 6""".format(parts=", ".join(PART_COLUMNS))
RAW_SUMS = """SELECT tenant_id, date_trunc('hour', occurred_at) AS hour, subject, provider, model, operation,
                     count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens), sum(output_tokens),
                     sum(cached_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(requests),
                     sum(units), sum(cost_nanos)::bigint, count(*) FILTER (WHERE cost_source = 'unpriced'),
                     count(latency_us), coalesce(sum(latency_us), 0)::bigint, array_agg(latency_us),
                     ARRAY[{parts}]::bigint[]
                FROM calls GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6""".format(
    parts=", ".join(f"sum(cost_parts[{i}])" for i in range(1, 9))
)


def latency(us: int) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMicroseconds(us)
    return out


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
async def test_rollups_equal_the_raw_calls_under_concurrent_records(fresh_database_url, now):
    # The 48 hours of calls before each fixed date cross day, month and year ends (and a leap day).
    rng = random.Random(11)
    async with running_server(fresh_database_url, clock=FakeClock(now)) as server:
        _, key = await server.keys.create("roll", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            requests = []
            for i in range(300):
                request = record(
                    f"c{i}",
                    subject=f"user:{rng.randint(1, 4)}",
                    model=rng.choice(["gpt-4.1", "gpt-4.1-mini", "unknown-x"]),
                    usage=common_pb2.Usage(input_tokens=rng.randint(0, 2000), output_tokens=rng.randint(0, 900),
                                           cached_read_tokens=rng.randint(0, 300), reasoning_tokens=rng.randint(0, 50)),
                    outcome=rng.choice([common_pb2.OUTCOME_SUCCESS, common_pb2.OUTCOME_ERROR]),
                    cost_nanos=None if rng.random() < 0.7 else rng.randint(0, 10**7),
                    occurred_at=now - dt.timedelta(hours=rng.randint(0, 48), minutes=rng.randint(0, 59)),
                )  # fmt: skip
                if rng.random() < 0.9:
                    request.latency.CopyFrom(latency(rng.randint(1, 30_000_000)))
                requests.append(request)
            await asyncio.gather(*(meter.RecordCall(r, metadata=auth) for r in requests))
            await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=requests[:50]), metadata=auth)  # duplicates
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        rollups = await (await conn.execute(ROLLUP_SUMS)).fetchall()
        raw = await (await conn.execute(RAW_SUMS)).fetchall()
    assert len(rollups) == len(raw) > 10
    for r, c in zip(rollups, raw, strict=True):
        assert r[:19] == c[:19]
        expected = histogram.empty()
        for us in c[19]:
            if us is not None:
                expected[histogram.bucket(us)] += 1
        assert r[19] == {str(b): n for b, n in enumerate(expected) if n}  # sparse: non-zero buckets only
        assert r[20] == c[20]  # the cost parts
        assert sum(r[20][:7]) == r[15]  # sum to the cost
    await assert_rollup_grains_agree(fresh_database_url)


def meter_retention(url: str, *extra: str) -> subprocess.CompletedProcess:
    args = [*METER, "retention", "--database-url", url, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("now", FIXED_NOWS, ids=date_id)
async def test_retention_drops_old_months_and_keeps_recent_calls_and_rollups(fresh_database_url, now, caplog):
    clock = FakeClock(now)
    ages = [200, 150, 100, 10, 1]  # days
    async with running_server(fresh_database_url, clock=clock, backfill_horizon="400d") as server:
        _, key = await server.keys.create("ret", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            for age in ages:
                await meter.RecordCall(
                    record(f"age-{age}", occurred_at=now - dt.timedelta(days=age), cost_nanos=age), metadata=auth
                )
            before = await meter.GetUsage(
                meter_pb2.GetUsageRequest(start=now - dt.timedelta(days=365), end=now + dt.timedelta(hours=1)),
                metadata=auth,
            )

    at = ("--now", now.isoformat())
    dry = await asyncio.to_thread(meter_retention, fresh_database_url, "--older-than", "90d", "--dry-run", *at)
    assert dry.returncode == 0 and "would drop" in dry.stdout, dry.stderr
    done = await asyncio.to_thread(meter_retention, fresh_database_url, "--older-than", "90d", *at)
    assert done.returncode == 0 and "dropped" in done.stdout, done.stderr
    cutoff = now - dt.timedelta(days=90)
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        kept = {r[0] for r in await (await conn.execute("SELECT call_id FROM calls")).fetchall()}
        ids = {r[0] for r in await (await conn.execute("SELECT call_id FROM call_ids")).fetchall()}
        rollup_cost = (await (await conn.execute("SELECT sum(cost_nanos)::bigint FROM usage_hourly")).fetchone())[0]
        parts = {r[0] for r in await (await conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'calls'::regclass"
        )).fetchall()}  # fmt: skip
    # Whole months that ended before the cutoff are gone; the month holding the cutoff is kept whole.
    for age in ages:
        occurred = now - dt.timedelta(days=age)
        gone = occurred.replace(day=1) < cutoff.replace(day=1)
        assert (f"age-{age}" not in kept) == gone and (f"age-{age}" in ids) == (not gone)
        assert (f"calls_{occurred:%Y_%m}" in parts) == (not gone)
    assert {"age-10", "age-1"} <= kept and "age-200" not in kept
    assert rollup_cost == before.totals.cost_nanos == sum(ages)  # aggregates survive retention

    # A server with the default horizon: a dropped call cannot come back, and no start warns that a
    # month's partition is blocked by rows in calls_default.
    caplog.clear()
    async with running_server(fresh_database_url, clock=clock) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await meter_pb2_grpc.MeterStub(channel).RecordCall(
                    record("age-200", occurred_at=now - dt.timedelta(days=200)), metadata=auth
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "back-fill horizon" in err.value.details()
    assert not [r for r in caplog.records if "cannot create the calls partition" in r.getMessage()]
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        assert (await (await conn.execute("SELECT count(*) FROM calls_default")).fetchone())[0] == 0


async def test_retention_shorter_than_the_backfill_horizon_is_refused(fresh_database_url):
    await migrate(fresh_database_url)
    for older_than, extra in (("1h", ()), ("29d", ()), ("90d", ("--backfill-horizon", "100d"))):
        refused = await asyncio.to_thread(meter_retention, fresh_database_url, "--older-than", older_than, *extra)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "shorter than the back-fill horizon" in refused.stderr and "METER_BACKFILL_HORIZON" in refused.stderr
    accepted = await asyncio.to_thread(meter_retention, fresh_database_url, "--older-than", "30d", "--dry-run")
    assert accepted.returncode == 0, accepted.stderr


HISTORY = """
INSERT INTO tenants (id) VALUES ('h');
INSERT INTO alert_rules (tenant_id, id, kind, severity, cooldown_s) VALUES
    ('h', 'short', 'call_cost', 'warning', 3600), ('h', 'long', 'call_cost', 'warning', 400 * 86400);
INSERT INTO alerts (tenant_id, kind, severity, message, dedup_key, created_at, window_end) VALUES
    ('h', 'limit_threshold', 'warning', 'm', 'old', now() - interval '200 days', now() - interval '199 days'),
    ('h', 'limit_threshold', 'warning', 'm', 'old-window-running', now() - interval '200 days', now() + interval '1 day'),
    ('h', 'call_cost', 'warning', 'm', 'old-webhook-owed', now() - interval '200 days', NULL),
    ('h', 'call_cost', 'warning', 'm', 'old-channel-owed', now() - interval '200 days', NULL),
    ('h', 'call_cost', 'warning', 'm', 'recent', now() - interval '1 day', NULL);
INSERT INTO alert_webhooks (tenant_id, alert_id, rule_id, delivered_at)
SELECT 'h', id, 'short', CASE dedup_key WHEN 'old' THEN now() - interval '200 days' END
  FROM alerts WHERE dedup_key IN ('old', 'old-webhook-owed');
INSERT INTO alert_deliveries (tenant_id, alert_id, channel, rule_id, kind, delivered_at)
SELECT 'h', id, 0, 'short', 'slack', CASE dedup_key WHEN 'old' THEN now() - interval '200 days' END
  FROM alerts WHERE dedup_key IN ('old', 'old-channel-owed');
INSERT INTO alert_cooldowns (tenant_id, rule_id, cooldown_key, last_at) VALUES
    ('h', 'short', 's', now() - interval '200 days'), ('h', 'long', 's', now() - interval '200 days');
INSERT INTO quota_denials (tenant_id, minute, subject, provider, model, operation, denials) VALUES
    ('h', now() - interval '200 days', 's', 'p', 'm', '', 1), ('h', now() - interval '1 day', 's', 'p', 'm', '', 1);
INSERT INTO reservations (tenant_id, id, api_key_id, subject, provider, model, estimate, state, expires_at, ended_at)
VALUES ('h', 'old-settled', 'k', 's', 'p', 'm', '{}', 'settled', now() - interval '200 days', now() - interval '200 days'),
       ('h', 'recent-expired', 'k', 's', 'p', 'm', '{}', 'expired', now() - interval '1 day', now() - interval '1 day'),
       ('h', 'live', 'k', 's', 'p', 'm', '{}', 'active', now() + interval '1 minute', NULL);
"""


async def test_retention_prunes_old_history_and_keeps_what_is_still_live(fresh_database_url):
    await migrate(fresh_database_url)
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as conn:
        await conn.execute(HISTORY)

    def retention(*extra: str) -> str:
        args = [*METER, "retention", "--older-than", "90d", "--database-url", fresh_database_url, *extra]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    expected = "1 alerts, 1 alert_deliveries, 1 alert_webhooks, 1 alert_cooldowns, 1 quota_denials, 1 reservations"
    assert "would prune history before" in (dry := await asyncio.to_thread(retention, "--dry-run")) and expected in dry
    assert expected in await asyncio.to_thread(retention)
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:

        async def left(sql: str) -> set:
            return {r[0] for r in await (await conn.execute(sql)).fetchall()}

        assert await left("SELECT dedup_key FROM alerts") == {
            "old-window-running",
            "old-webhook-owed",
            "old-channel-owed",
            "recent",
        }
        assert await left("SELECT delivered_at IS NULL FROM alert_webhooks") == {True}  # the owed one
        assert await left("SELECT delivered_at IS NULL FROM alert_deliveries") == {True}
        assert await left("SELECT rule_id FROM alert_cooldowns") == {"long"}  # its 400-day cooldown still runs
        assert len(await left("SELECT minute FROM quota_denials")) == 1
        assert await left("SELECT id FROM reservations") == {"recent-expired", "live"}
