"""Service tests over the in-memory ports (meterd.service.fakes): the services' decisions without
PostgreSQL or gRPC. The whole directory runs in well under a second; the same behaviours are tested
end to end against real PostgreSQL in tests/e2e and tests/integration, and
tests/integration/test_port_contract.py holds the fakes to the real stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from meter_testing.services import Services, fake_services


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    async with fake_services() as s:
        yield s
