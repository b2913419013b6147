"""Fixtures for end-to-end tests: a server whose quota clock the test drives."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server

T0 = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="module")
async def clocked(postgres, clock):
    """(server, meter stub, admin stub): a server on a database of its own, so that no server on the
    real clock (whose sweeper would expire reservations made at the fake time) shares its tables."""
    url = postgres.create_database()
    try:
        async with running_server(url, clock=clock, sweep_interval=3600) as server:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield server, meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
    finally:
        postgres.drop_database(url)


@pytest.fixture
def make_clocked_tenant(clocked):
    """Creates a new tenant, with one key per role, on the clocked server's database."""
    return lambda: create_tenant(clocked[0])


@pytest.fixture
async def env(clocked, clock):
    """(server, meter stub, set_limits, tenant, clock) with the clock back at T0 and a new tenant."""
    clock.set(T0)
    server, meter, admin = clocked
    tenant = await create_tenant(server)

    async def set_limits(*limits):
        for lim in limits:
            await admin.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=tenant.auth())

    return server, meter, set_limits, tenant, clock
