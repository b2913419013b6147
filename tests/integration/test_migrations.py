"""The migrations runner against real databases: order, once, lock, checksums, resulting schema."""

from __future__ import annotations

import asyncio
import shutil

import psycopg
import pytest

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
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await migrate(fresh_database_url, copy)
    names = await tables(fresh_database_url)
    assert "half_done" not in names and "tenants" in names


def test_badly_named_file_is_refused(tmp_path):
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        discover(tmp_path)
