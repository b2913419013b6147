"""Fixtures for client tests: a fresh tenant on the session's real server, and its address."""

from __future__ import annotations

import socket

import pytest

from meter.v1 import admin_pb2
from meter_testing.fixtures import Tenant


@pytest.fixture
async def fresh_tenant(make_tenant) -> Tenant:
    return await make_tenant()


@pytest.fixture(scope="session")
def target(meter_server) -> str:
    return f"127.0.0.1:{meter_server.port}"


@pytest.fixture
def set_limits(admin_stub):
    async def set_limits(tenant: Tenant, *limits) -> None:
        for lim in limits:
            await admin_stub.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=tenant.auth())

    return set_limits


@pytest.fixture
def dead_target() -> str:
    """An address where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"
