"""A database that goes away under a running Meter: fast UNAVAILABLE, NOT_SERVING, then recovery
without restarting Meter."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meter.v1 import meter_pb2, meter_pb2_grpc
from meter_testing.fixtures import TEST_PG_SETTINGS, running_server
from meter_testing.requests import record
from meter_testing.waiting import eventually
from meterd.store.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow


async def wait_for(predicate, within: float = 20.0):
    await eventually(predicate, within=within)


async def test_rpcs_fail_fast_while_database_is_down_and_recover_after(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg", settings=TEST_PG_SETTINGS)
    url = pg.start()
    try:
        async with running_server(url, pool_timeout=1, health_interval=0.3) as server:
            _, key = await server.keys.create("outage", ["admin"])
            auth = (("authorization", f"Bearer {key}"),)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter = meter_pb2_grpc.MeterStub(channel)
                health = health_pb2_grpc.HealthStub(channel)
                await meter.RecordCall(record(), metadata=auth)

                pg.force_stop()
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await meter.RecordCall(record(), metadata=auth)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 1 + 2  # the pool timeout, plus slack
                assert "retry" in err.value.details()

                async def not_serving():
                    reply = await health.Check(health_pb2.HealthCheckRequest())
                    return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

                await wait_for(not_serving)

                pg.start()

                async def recorded():
                    try:
                        await meter.RecordCall(record(), metadata=auth)
                        return True
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.UNAVAILABLE
                        return False

                await wait_for(recorded)
                usage = await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
                assert usage.totals.calls == 2

                async def serving():
                    reply = await health.Check(health_pb2.HealthCheckRequest())
                    return reply.status == health_pb2.HealthCheckResponse.SERVING

                await wait_for(serving)
    finally:
        pg.force_stop()


async def test_after_an_outage_the_pool_is_back_within_about_two_seconds_whatever_its_length(tmp_path, monkeypatch):
    """psycopg_pool's reconnect backoff doubles for as long as an attempt lasts (after a 35 s outage
    the next attempt could be 30 s away). Here it grows tenfold from 0.2 s, so that a 4 s outage
    shows the same thing in seconds: a stock pool (reconnect_timeout=inf) would wait until ~22 s."""
    from psycopg_pool.base import AttemptWithBackoff

    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.2)
    monkeypatch.setattr(AttemptWithBackoff, "DELAY_BACKOFF", 10.0)
    pg = EmbeddedPostgres(tmp_path / "pg", settings=TEST_PG_SETTINGS)
    url = pg.start()
    try:
        async with running_server(url, pool_timeout=0.5, health_interval=0.2, reconnect_timeout=0.5) as server:
            _, key = await server.keys.create("outage", ["admin"])
            auth = (("authorization", f"Bearer {key}"),)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter = meter_pb2_grpc.MeterStub(channel)
                await meter.RecordCall(record(), metadata=auth)
                pg.force_stop()
                down_until = time.monotonic() + 4
                while time.monotonic() < down_until:  # RPCs keep failing (and queueing) through the outage
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await meter.RecordCall(record(), metadata=auth)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                    # Only live waiters (this RPC's successor, background tasks), not every RPC that timed out.
                    assert server.db.pool.get_stats().get("requests_waiting", 0) < 4
                pg.start()
                back = time.monotonic()

                async def recorded():
                    try:
                        await meter.RecordCall(record(), metadata=auth)
                        return True
                    except grpc.aio.AioRpcError:
                        return False

                await wait_for(recorded, within=10)
                assert time.monotonic() - back < 2.5
    finally:
        pg.force_stop()
