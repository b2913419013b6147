"""The migrations runner against real databases: order, once, lock, checksums, resulting schema."""

from __future__ import annotations

import asyncio
import shutil

import psycopg
import pytest

from meter_testing.rollups import assert_rollup_grains_agree
from meterd.store.migrate import MigrationError, discover, migrate, migrations_dir

EXPECTED_TABLES = {
    "schema_migrations",
    "tenants",
    "api_keys",
    "limits",
    "counters",
    "reservations",
    "calls",
    "calls_default",
    "call_ids",
    "prices",
    "alert_rules",
    "alerts",
    "usage_hourly",
    "usage_model_hourly",
    "usage_model_daily",
}


async def tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in await cur.fetchall()}


async def test_fresh_database_gets_every_migration_once(fresh_database_url):
    applied = await migrate(fresh_database_url)
    assert applied == [m.name for m in discover()]
    assert await migrate(fresh_database_url) == []
    assert EXPECTED_TABLES <= await tables(fresh_database_url)


async def test_two_concurrent_runners_apply_each_migration_exactly_once(fresh_database_url):
    first, second = await asyncio.gather(migrate(fresh_database_url), migrate(fresh_database_url))
    assert sorted(first + second) == sorted(m.name for m in discover())
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        assert (await cur.fetchone())[0] == len(discover())


async def test_edited_applied_migration_is_refused(fresh_database_url, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), copy)
    await migrate(fresh_database_url, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="never edit an applied migration"):
        await migrate(fresh_database_url, copy)


async def test_failed_migration_leaves_nothing_half_applied(fresh_database_url, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), copy)
    (copy / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match="9999_broken.sql failed: UndefinedFunction") as failed:
        await migrate(fresh_database_url, copy)
    assert isinstance(failed.value.__cause__, psycopg.errors.UndefinedFunction)
    names = await tables(fresh_database_url)
    assert "half_done" not in names and "tenants" in names


def test_badly_named_file_is_refused(tmp_path):
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        discover(tmp_path)


async def test_model_rollups_are_built_from_existing_hourly_rollups(fresh_database_url, tmp_path):
    """0004 adds subject-free rollups; a database that already has hourly rollups gets them summed in."""
    for migration in discover():
        if migration.version <= 3:
            shutil.copy(migrations_dir() / migration.name, tmp_path / migration.name)
    await migrate(fresh_database_url, tmp_path)
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO usage_hourly (tenant_id, hour, subject, provider, model, operation, calls, errors,
                                         cost_nanos, latency_count, latency_sum_us, latency_buckets)
               SELECT 't' || (g % 2), timestamptz '2026-03-01 00:00Z' + (g % 50) * interval '1 hour',
                      'user:' || (g % 7), 'openai', 'm' || (g % 3), 'chat', g, g % 4, g * 1000, 1, g,
                      meter_hist_add_sparse(NULL, jsonb_build_object((g % 128)::text, 1))
                 FROM generate_series(1, 500) g
                   ON CONFLICT DO NOTHING"""
        )
    assert await migrate(fresh_database_url) == [m.name for m in discover() if m.version > 3]
    await assert_rollup_grains_agree(fresh_database_url)
