"""Window resets through the real server, with the quota clock driven by the test, and the
database's window arithmetic checked against the domain's."""

from __future__ import annotations

import datetime as dt
import random

import psycopg
import pytest

from meter.v1 import admin_pb2
from meter_testing.requests import check, limit
from meterd.domain.windows import WindowKind, WindowSpec, window_start

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# (window, seconds, a time inside a window, the first instant of the next window)
BOUNDARIES = [
    ("MINUTE", 0, at(2026, 3, 10, 12, 0, 59, 999999), at(2026, 3, 10, 12, 1)),
    ("HOUR", 0, at(2026, 3, 10, 12, 59, 59), at(2026, 3, 10, 13)),
    ("DAY", 0, at(2026, 3, 10, 23, 59, 59), at(2026, 3, 11)),
    ("WEEK", 0, at(2026, 3, 15, 23, 59, 59), at(2026, 3, 16)),  # Sunday → Monday
    ("MONTH", 0, at(2026, 1, 31, 23, 59, 59), at(2026, 2, 1)),
    ("MONTH", 0, at(2028, 2, 29, 12), at(2028, 3, 1)),  # leap year
    ("MONTH", 0, at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)),
    ("FIXED", 5, at(2026, 3, 10, 12, 0, 4), at(2026, 3, 10, 12, 0, 5)),
    ("FIXED", 1800, at(2026, 3, 10, 12, 29, 59), at(2026, 3, 10, 12, 30)),
]


@pytest.mark.parametrize(("window", "seconds", "inside", "next_start"), BOUNDARIES)
async def test_window_resets_exactly_at_its_boundary(env, window, seconds, inside, next_start):
    _, meter, set_limits, tenant, clock = env
    await set_limits(limit("w", "REQUESTS", window, 1, seconds=seconds))
    clock.set(inside)
    first = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert first.allowed and first.limits[0].reset_at.ToDatetime(UTC) == next_start
    clock.set(next_start - dt.timedelta(microseconds=1))
    assert not (await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed
    clock.set(next_start)
    fresh = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert fresh.allowed and fresh.limits[0].window_start.ToDatetime(UTC) == next_start


async def test_sliding_window_weighs_the_previous_bucket(env):
    _, meter, set_limits, tenant, clock = env
    await set_limits(limit("s", "REQUESTS", "SLIDING", 10, seconds=60))
    clock.set(at(2026, 3, 10, 12, 0, 30))
    for _ in range(10):
        assert (await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed
    denied = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert not denied.allowed
    # Half-way into the next bucket half of the previous one still counts: 5 of 10 are free.
    clock.set(at(2026, 3, 10, 12, 1, 30))
    allowed = [(await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed for _ in range(6)]
    assert allowed == [True] * 5 + [False]
    # Retry-after is exact for the sliding window: at 12:01:36 the carried share of the previous
    # bucket drops from 5 to 4.
    last = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert last.retry_after.seconds == 6


async def test_database_and_domain_agree_on_window_starts(clocked):
    database_url = clocked[0].database_url
    rng = random.Random(7)
    specs = [WindowSpec(k) for k in ("minute", "hour", "day", "week", "month")]
    specs += [WindowSpec(WindowKind.FIXED, s) for s in (1, 5, 7, 60, 1800, 86400, 604800)]
    times = [
        at(2026, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 3 * 366 * 86400), microseconds=rng.randrange(10**6))
        for _ in range(300)
    ]
    times += [b[3] for b in BOUNDARIES] + [b[2] for b in BOUNDARIES]
    rows = [(s.kind.value, s.seconds, t) for s in specs for t in times]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT meter_window_start(k, s, t) FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[]) "
            "WITH ORDINALITY AS u(k, s, t, o) ORDER BY o",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
        )
        from_db = [r[0] for r in await cur.fetchall()]
    expected = [window_start(WindowSpec(k, s), t) for k, s, t in rows]
    assert from_db == expected


async def test_check_uses_the_database_clock_when_none_is_injected(meter_stub, admin_stub, make_tenant, database_url):
    tenant = await make_tenant()
    await admin_stub.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("m", "REQUESTS", "MINUTE", 5)), metadata=tenant.auth()
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        before = (await (await conn.execute("SELECT clock_timestamp()")).fetchone())[0]
        reply = await meter_stub.CheckQuota(check(), metadata=tenant.auth("check"))
        after = (await (await conn.execute("SELECT clock_timestamp()")).fetchone())[0]
    assert before <= reply.evaluated_at.ToDatetime(UTC) <= after
