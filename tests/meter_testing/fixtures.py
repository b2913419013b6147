"""pytest plugin: a real PostgreSQL and real Meter servers on real ports.

PostgreSQL is METER_TEST_DATABASE_URL when set (a server you run; each session creates and drops
its own database on it), else an embedded server in a temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import psycopg
import pytest

from meter.v1 import admin_pb2_grpc, meter_pb2_grpc
from meterd.app import MeterServer
from meterd.config import Config
from meterd.store.embedded import EmbeddedPostgres


@dataclass
class Postgres:
    """A PostgreSQL server the tests may create databases on."""

    admin_url: str  # a URL to a maintenance database on the server
    embedded: EmbeddedPostgres | None

    def url(self, dbname: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = dbname
        return psycopg.conninfo.make_conninfo(**info)

    def create_database(self) -> str:
        name = f"meter_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Durability is not under test in most tests; fsync off makes them several times faster.
TEST_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300"}


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Postgres:
    if os.environ.get("METER_TEST_DATABASE_URL"):
        yield Postgres(os.environ["METER_TEST_DATABASE_URL"], None)
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), settings=TEST_PG_SETTINGS)
    embedded.start("postgres")
    yield Postgres(embedded.url("postgres"), embedded)
    embedded.stop()


@pytest.fixture(scope="session")
def database_url(postgres: Postgres) -> str:
    """A fresh database for the whole test session."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def fresh_database_url(postgres: Postgres) -> str:
    """A fresh, empty database for one test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def test_config(**overrides) -> Config:
    values = {"listen": "127.0.0.1:0", "log_level": "INFO", "pool_timeout": "2", "health_interval": "0.5"}
    values.update({k: str(v) for k, v in overrides.items()})
    return Config.load(values, environ={})


@contextlib.asynccontextmanager
async def running_server(database_url: str, *, clock=None, tracing=None, **config) -> AsyncIterator[MeterServer]:
    """A Meter server in this process on a free port, SERVING before it is yielded."""
    server = MeterServer(test_config(**config), database_url, clock=clock, tracing=tracing)
    await server.start()
    try:
        async with asyncio.timeout(30):
            await server.ready.wait()
        yield server
    finally:
        await server.stop(grace=1)


@pytest.fixture(scope="session")
async def meter_server(database_url: str) -> AsyncIterator[MeterServer]:
    async with running_server(database_url) as server:
        yield server


@dataclass
class Tenant:
    id: str
    keys: dict[str, str]  # role -> full key

    def auth(self, role: str = "admin") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[role]}"),)


async def create_tenant(server: MeterServer) -> Tenant:
    """A new tenant on the server's database with one key per role (check, record, read, admin)."""
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    keys = {}
    for role in ("check", "record", "read", "admin"):
        _, keys[role] = await server.keys.create(tenant_id, [role], f"test {role}")
    return Tenant(tenant_id, keys)


@pytest.fixture(scope="session")
async def make_tenant(meter_server: MeterServer) -> Callable:
    """Creates a new tenant on the session server."""
    return lambda: create_tenant(meter_server)


@pytest.fixture(scope="session")
async def tenant(make_tenant) -> Tenant:
    return await make_tenant()


@pytest.fixture(scope="session")
async def channel(meter_server: MeterServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{meter_server.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def meter_stub(channel) -> meter_pb2_grpc.MeterStub:
    return meter_pb2_grpc.MeterStub(channel)


@pytest.fixture(scope="session")
def admin_stub(channel) -> admin_pb2_grpc.MeterAdminStub:
    return admin_pb2_grpc.MeterAdminStub(channel)
