-- Every per-tenant table is keyed by tenant_id first, so the schema can be distributed by tenant
-- (docs/scaling.md; tests/integration/test_schema_invariants.py). alerts was the exception: its
-- primary key was the global id alone. The id stays a global sequence (StreamAlerts resumes from it
-- across tenants) and keeps an index of its own for the hub's "newer than" reads.
CREATE INDEX alerts_id ON alerts (id);
ALTER TABLE alerts DROP CONSTRAINT alerts_pkey;
ALTER TABLE alerts ADD PRIMARY KEY (tenant_id, id);
-- The primary key now serves what this index did.
DROP INDEX alerts_tenant_id;
