"""Exactness under concurrency, across two server processes sharing one database."""

from __future__ import annotations

import asyncio
import random

import grpc
import psycopg
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.processes import ServeProcess, create_key
from meter_testing.requests import check, limit, record
from meter_testing.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
async def two_servers(fresh_database_url, tmp_path):
    """Two `meter serve` processes on one fresh database (they race to migrate it, too)."""
    args = ("--database-url", fresh_database_url, "--sweep-interval", "0.2")
    servers: list[ServeProcess] = []
    try:
        for i in (1, 2):
            servers.append(ServeProcess(tmp_path / f"serve{i}.log", *args))
        for s in servers:
            s.wait_for("SERVING", timeout=30)
        key = create_key("conc", "admin", "--database-url", fresh_database_url)
        auth = (("authorization", f"Bearer {key}"),)
        channels = [grpc.aio.insecure_channel(s.address) for s in servers]
        meters = [meter_pb2_grpc.MeterStub(c) for c in channels]
        admin = admin_pb2_grpc.MeterAdminStub(channels[0])
        await wait_serving(meters, auth)
        yield meters, admin, auth, fresh_database_url
        for c in channels:
            await c.close()
    finally:
        for s in servers:
            assert s.stop() == 0, s.log.read_text()


async def wait_serving(meters, auth) -> None:
    for meter in meters:

        async def serving(meter=meter) -> bool:
            try:
                await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
                return True
            except grpc.aio.AioRpcError:
                return False

        await eventually(serving, within=30, what="GetUsage answers")


async def counters(url: str, limit_id: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(used), 0), coalesce(sum(reserved), 0) FROM counters WHERE limit_id = %s", (limit_id,)
        )
        used, reserved = await cur.fetchone()
        return int(used), int(reserved)


async def test_200_concurrent_reserves_against_100_admit_exactly_100(two_servers):
    meters, admin, auth, url = two_servers
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("hundred", "REQUESTS", "DAY", 100)), metadata=auth)
    replies = await asyncio.gather(*(meters[i % 2].CheckQuota(check(), metadata=auth) for i in range(200)))
    assert sum(r.allowed for r in replies) == 100
    assert await counters(url, "hundred") == (0, 100)
    assert all(r.retry_after.seconds > 0 for r in replies if not r.allowed)


async def test_random_settles_releases_and_expiries_leave_exactly_the_settled_actuals(two_servers):
    meters, admin, auth, url = two_servers
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("tokens", "TOTAL_TOKENS", "DAY", 20_000)), metadata=auth)
    rng = random.Random(42)
    settled_actuals = 0

    async def one(i: int) -> int:
        meter = meters[i % 2]
        reply = await meter.CheckQuota(
            check(estimate={"input_tokens": rng.randint(10, 100)}, reservation_ttl={"seconds": 1}), metadata=auth
        )
        if not reply.allowed:
            return 0
        fate = rng.choice(["settle", "settle", "release", "expire"])
        if fate == "settle":
            actual = rng.randint(0, 150)
            await meter.RecordCall(
                record(f"call-{i}", reservation_id=reply.reservation_id, usage=common_pb2.Usage(input_tokens=actual)),
                metadata=auth,
            )
            return actual
        if fate == "release":
            await meter.ReleaseReservation(
                meter_pb2.ReleaseReservationRequest(reservation_id=reply.reservation_id), metadata=auth
            )
        return 0

    settled_actuals = sum(await asyncio.gather(*(one(i) for i in range(300))))

    async def nothing_reserved() -> bool:  # the sweepers release what was left to expire
        return (await counters(url, "tokens"))[1] == 0

    await eventually(nothing_reserved, what="every reservation settled, released or expired")
    assert await counters(url, "tokens") == (settled_actuals, 0)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT state, count(*) FROM reservations GROUP BY state")
        states = dict(await cur.fetchall())
    assert states.get("active", 0) == 0 and states.get("expired", 0) > 0


async def test_multi_limit_reservations_in_random_orders_never_deadlock(two_servers):
    meters, admin, auth, url = two_servers
    features = ["a", "b", "c", "d", "e"]
    for f in features:
        await admin.SetLimit(
            admin_pb2.SetLimitRequest(limit=limit(f"f-{f}", "REQUESTS", "HOUR", 10_000, selector={"labels": {f: "1"}})),
            metadata=auth,
        )
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("all", "REQUESTS", "HOUR", 10_000)), metadata=auth)
    rng = random.Random(3)
    requests = []
    for i in range(400):
        chosen = rng.sample(features, rng.randint(1, len(features)))
        requests.append((i % 2, check(subject=f"user:{rng.randint(1, 5)}", labels={f: "1" for f in chosen})))
    replies = await asyncio.gather(*(meters[s].CheckQuota(r, metadata=auth) for s, r in requests))
    assert all(r.allowed for r in replies)  # any deadlock would have surfaced as an error
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT x->>'limit_id', count(*) FROM reservations, jsonb_array_elements(charges) x GROUP BY 1"
        )
        charged = dict(await cur.fetchall())
        cur = await conn.execute("SELECT limit_id, sum(reserved) FROM counters GROUP BY 1")
        reserved = {k: int(v) for k, v in await cur.fetchall()}
    assert charged == reserved and reserved["all"] == 400


async def test_limit_changes_reach_the_other_process_at_once(two_servers):
    meters, admin, auth, _ = two_servers
    assert (await meters[1].CheckQuota(check("CHECK_ONLY", subject="new"), metadata=auth)).no_limits_matched
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("fresh", "REQUESTS", "HOUR", 5)), metadata=auth)

    async def matched(expected: bool) -> bool:
        reply = await meters[1].CheckQuota(check("CHECK_ONLY", subject="new"), metadata=auth)
        return reply.no_limits_matched != expected

    # NOTIFY invalidates within milliseconds; the bound leaves room for a loaded 2-CPU machine and
    # still tells it from the cache's 60 s safety net.
    await eventually(lambda: matched(True), within=3.0, what="the new limit applies on the other process")
    await admin.DeleteLimit(admin_pb2.DeleteLimitRequest(id="fresh"), metadata=auth)
    await eventually(lambda: matched(False), within=3.0, what="the deleted limit stops applying there")
