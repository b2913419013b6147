-- Initial schema. Every table is keyed by tenant_id first, so the schema can be distributed by tenant.
-- Money is bigint nano-USD (or numeric where sums can grow); times are timestamptz (UTC).

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are "mk_<id>_<secret>"; only the SHA-256 of the whole key is stored.
CREATE TABLE api_keys (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    id          text NOT NULL,
    name        text NOT NULL DEFAULT '',
    key_hash    bytea NOT NULL,
    roles       text[] NOT NULL CHECK (cardinality(roles) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);

CREATE TABLE limits (
    tenant_id         text NOT NULL REFERENCES tenants (id),
    id                text NOT NULL,
    description       text NOT NULL DEFAULT '',
    selector          jsonb NOT NULL DEFAULT '{}',
    metric            text NOT NULL,
    window_kind       text NOT NULL,
    window_seconds    bigint NOT NULL DEFAULT 0,
    max               bigint NOT NULL CHECK (max > 0),
    partition_by      text NOT NULL,
    action            text NOT NULL,
    alert_thresholds  integer[] NOT NULL DEFAULT '{}',
    -- Bumped whenever metric, window or partition change, so old counters stop counting.
    generation        bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- One row per (limit, partition, fixed window). Only the primary key is indexed so updates stay HOT.
CREATE TABLE counters (
    tenant_id     text NOT NULL,
    limit_id      text NOT NULL,
    generation    bigint NOT NULL,
    partition_key text NOT NULL,
    window_start  timestamptz NOT NULL,
    used          bigint NOT NULL DEFAULT 0,
    reserved      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, limit_id, generation, partition_key, window_start)
) WITH (fillfactor = 70);

-- A reservation remembers exactly what it added to which counter, so settling or expiring it
-- subtracts exactly that.
CREATE TABLE reservations (
    tenant_id     text NOT NULL,
    id            text NOT NULL,
    api_key_id    text NOT NULL,
    subject       text NOT NULL,
    provider      text NOT NULL,
    model         text NOT NULL,
    operation     text NOT NULL DEFAULT '',
    labels        jsonb NOT NULL DEFAULT '{}',
    estimate      jsonb NOT NULL,
    charges       jsonb NOT NULL DEFAULT '[]',
    cost_nanos    bigint NOT NULL DEFAULT 0,
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'settled', 'released', 'expired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    call_id       text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE state = 'active';

-- Raw calls, partitioned by month of occurred_at so retention drops whole partitions.
CREATE TABLE calls (
    tenant_id            text NOT NULL,
    call_id              text NOT NULL,
    occurred_at          timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL DEFAULT now(),
    api_key_id           text NOT NULL,
    reservation_id       text,
    subject              text NOT NULL,
    provider             text NOT NULL,
    model                text NOT NULL,
    operation            text NOT NULL DEFAULT '',
    labels               jsonb NOT NULL DEFAULT '{}',
    metadata             jsonb NOT NULL DEFAULT '{}',
    input_tokens         bigint NOT NULL DEFAULT 0,
    output_tokens        bigint NOT NULL DEFAULT 0,
    cached_read_tokens   bigint NOT NULL DEFAULT 0,
    cache_write_tokens   bigint NOT NULL DEFAULT 0,
    reasoning_tokens     bigint NOT NULL DEFAULT 0,
    requests             bigint NOT NULL DEFAULT 1,
    units                bigint NOT NULL DEFAULT 0,
    latency_us           bigint,
    ttft_us              bigint,
    retry_count          integer NOT NULL DEFAULT 0,
    success              boolean NOT NULL,
    error_code           text NOT NULL DEFAULT '',
    error_message        text NOT NULL DEFAULT '',
    cost_nanos           bigint NOT NULL DEFAULT 0,
    cost_source          text NOT NULL,
    price_id             text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, occurred_at, call_id)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE calls_default PARTITION OF calls DEFAULT;

-- Idempotency: unique per (tenant, call_id) across partitions, holding the first answer.
CREATE TABLE call_ids (
    tenant_id     text NOT NULL,
    call_id       text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    content_hash  bytea NOT NULL,
    cost_nanos    bigint NOT NULL,
    cost_source   text NOT NULL,
    price_id      text NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, call_id)
);

-- Price versions. tenant_id '' holds the catalog shared by every tenant; a tenant's own rows win.
CREATE TABLE prices (
    id                          bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id                   text NOT NULL DEFAULT '',
    provider                    text NOT NULL,
    model_pattern               text NOT NULL,
    effective_from              timestamptz NOT NULL,
    input_nanos_per_mtok        bigint NOT NULL DEFAULT 0 CHECK (input_nanos_per_mtok >= 0),
    output_nanos_per_mtok       bigint NOT NULL DEFAULT 0 CHECK (output_nanos_per_mtok >= 0),
    cached_read_nanos_per_mtok  bigint NOT NULL DEFAULT 0 CHECK (cached_read_nanos_per_mtok >= 0),
    cache_write_nanos_per_mtok  bigint NOT NULL DEFAULT 0 CHECK (cache_write_nanos_per_mtok >= 0),
    request_nanos               bigint NOT NULL DEFAULT 0 CHECK (request_nanos >= 0),
    unit_nanos                  bigint NOT NULL DEFAULT 0 CHECK (unit_nanos >= 0),
    note                        text NOT NULL DEFAULT '',
    created_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, provider, model_pattern, effective_from)
);

CREATE TABLE alert_rules (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    id          text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL,
    scope       jsonb NOT NULL DEFAULT '{}',
    params      jsonb NOT NULL DEFAULT '{}',
    cooldown_s  bigint NOT NULL DEFAULT 0,
    webhook_url text NOT NULL DEFAULT '',
    webhook_secret text NOT NULL DEFAULT '',
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- Alerts are rows with increasing ids; xid lets a stream reader hold back ids whose transaction may
-- still commit (sequence ids become visible out of order).
CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL,
    rule_id       text NOT NULL DEFAULT '',
    kind          text NOT NULL,
    severity      text NOT NULL,
    subject       text NOT NULL DEFAULT '',
    provider      text NOT NULL DEFAULT '',
    model         text NOT NULL DEFAULT '',
    limit_id      text NOT NULL DEFAULT '',
    metric        text NOT NULL DEFAULT '',
    observed      double precision NOT NULL DEFAULT 0,
    threshold     double precision NOT NULL DEFAULT 0,
    window_start  timestamptz,
    window_end    timestamptz,
    message       text NOT NULL,
    dedup_key     text NOT NULL,
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dedup_key)
);
CREATE INDEX alerts_tenant_id ON alerts (tenant_id, id);
