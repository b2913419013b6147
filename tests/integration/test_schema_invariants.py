"""The schema invariants that let Meter be distributed by tenant (docs/scaling.md): every primary key
and unique index of a per-tenant table begins with tenant_id, and every per-tenant table has one.
The few tables that are not per tenant are declared here, with the reason, and nowhere else."""

from __future__ import annotations

import psycopg

from meterd.store.migrate import migrate

# Tables every node needs whole (Citus reference tables) or that are local bookkeeping.
REFERENCE_TABLES = {
    "schema_migrations": "local to each database: which migrations ran",
    "tenants": "the tenant directory itself (its id is the tenant id)",
    "api_keys": "looked up by key hash before the tenant is known: the auth directory",
}

UNIQUE_INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name,
       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS columns
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
 WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace AND NOT t.relispartition
"""

TABLES = """
SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                            AND NOT a.attisdropped)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


async def test_every_unique_key_of_a_tenant_table_begins_with_tenant_id(fresh_database_url):
    await migrate(fresh_database_url)
    with psycopg.connect(fresh_database_url) as conn:
        indexes = conn.execute(UNIQUE_INDEXES).fetchall()
        tables = dict(conn.execute(TABLES).fetchall())
    assert set(REFERENCE_TABLES) <= set(tables), "a declared reference table no longer exists"
    offending = [
        f"{table}.{index} {columns}"
        for table, index, columns in indexes
        if table not in REFERENCE_TABLES and columns[0] != "tenant_id"
    ]
    assert not offending, f"unique keys not led by tenant_id: {offending}"
    untenanted = [t for t, has_tenant in tables.items() if not has_tenant and t not in REFERENCE_TABLES]
    assert not untenanted, f"tables without tenant_id: {untenanted}"
    assert len(indexes) > len(tables) - len(REFERENCE_TABLES)  # the query saw the keys at all
