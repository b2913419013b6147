"""Every wait on the database is bounded server-side: the pool's queue, a stuck batch transaction
and the requests queued behind it; and a saturated pool never reads as a database that is down."""

from __future__ import annotations

import asyncio
import time

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter.v1 import meter_pb2_grpc
from meter_testing.fixtures import running_server
from meter_testing.requests import record
from meter_testing.waiting import eventually
from meterd.domain.errors import Unavailable
from meterd.store.db import Database


async def test_waiters_that_timed_out_leave_the_pool_queue(database_url):
    db = Database(database_url, min_size=1, max_size=1, timeout=0.2, max_waiting=5)
    await db.open()
    try:
        async with db.connection():  # the only connection is busy
            for _ in range(3):  # more rounds of timed-out waiters than max_waiting allows in total
                results = await asyncio.gather(*(_acquire(db) for _ in range(5)), return_exceptions=True)
                assert all(isinstance(r, Unavailable) and "within" in str(r) for r in results), results
                assert db.pool.get_stats().get("requests_waiting", 0) == 0
        async with db.connection() as conn:  # and the pool still serves
            await conn.execute("SELECT 1")
    finally:
        await db.close()


async def _acquire(db: Database) -> None:
    async with db.connection():
        pass


@pytest.fixture
async def lockable(fresh_database_url):
    async with running_server(fresh_database_url, batch_timeout=0.5, pool_timeout=1, health_interval=0.2) as server:
        _, key = await server.keys.create("hang", ["admin"])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, meter_pb2_grpc.MeterStub(channel), (("authorization", f"Bearer {key}"),), fresh_database_url


async def test_a_stuck_batch_and_the_requests_queued_behind_it_fail_at_the_batch_timeout(lockable):
    server, meter, auth, url = lockable
    await meter.RecordCall(record(), metadata=auth)
    # A session that holds call_ids locked stands in for a database that stopped answering.
    async with await psycopg.AsyncConnection.connect(url) as blocker:
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE call_ids IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        codes = await asyncio.gather(*(_code(meter.RecordCall(record(), metadata=auth, timeout=30)) for _ in range(20)))
        elapsed = time.monotonic() - started
        assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
        assert elapsed < 0.5 * 2 + 1  # the batch's timeout, then the queued ones' at the latest (+ slack)
        await blocker.execute("ROLLBACK")
    # The abandoned transactions' connections were discarded: the service recovers by itself.
    deadline = time.monotonic() + 10
    while await _code(meter.RecordCall(record(), metadata=auth)) != grpc.StatusCode.OK:
        assert time.monotonic() < deadline


async def test_health_follows_the_database_not_a_saturated_pool(lockable):
    server, _, _, _ = lockable
    held = [await server.db.pool.getconn() for _ in range(server.config.pool_max)]  # every connection busy
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            pings = server.probe.pings

            async def probed_three_times_and_still_serving():
                reply = await health.Check(health_pb2.HealthCheckRequest())
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                return server.probe.pings >= pings + 3  # three probes while the pool cannot serve anyone

            await eventually(probed_three_times_and_still_serving, what="three health probes")
    finally:
        for conn in held:
            await server.db.pool.putconn(conn)


async def _code(call) -> grpc.StatusCode:
    try:
        await call
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        return exc.code()
