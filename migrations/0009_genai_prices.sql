-- Prices from genai-prices (issue 13): source match rules, context and service tiers, unit kinds,
-- the source version of the shared catalog, and a cost breakdown on every call and rollup row.

-- A price version may be for one service tier ('' = standard) and carry its source's match rule
-- (JSON, see server/meterd/domain/price_rules.py; '' = model_pattern is a glob), the model's
-- position in its provider's list (first match wins), context-length tiers
-- ([[rate, start, nanos_per_mtok], ...]), what usage.units counts and per how many units
-- unit_nanos is; daily_window ('HH:MM:SS-HH:MM:SS' UTC, '' none): the version applies only at those
-- times of day (DeepSeek's peak hours), where it beats versions without one. retired_at: no longer in force for new prices (a sync replaced or removed it);
-- the row stays so the calls that used it keep a price_id that resolves.
ALTER TABLE prices
    ADD COLUMN service_tier text NOT NULL DEFAULT '',
    ADD COLUMN match_rule   text NOT NULL DEFAULT '',
    ADD COLUMN match_order  integer NOT NULL DEFAULT 0,
    ADD COLUMN tiers        jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN unit_kind    text NOT NULL DEFAULT '',
    ADD COLUMN unit_divisor bigint NOT NULL DEFAULT 1 CHECK (unit_divisor BETWEEN 1 AND 1000000000),
    ADD COLUMN source       text NOT NULL DEFAULT '',
    ADD COLUMN daily_window text NOT NULL DEFAULT '',
    ADD COLUMN retired_at   timestamptz;

ALTER TABLE prices DROP CONSTRAINT prices_tenant_id_provider_model_pattern_effective_from_key;
CREATE UNIQUE INDEX prices_version_key
    ON prices (tenant_id, provider, model_pattern, service_tier, daily_window, effective_from) WHERE retired_at IS NULL;

-- The hand-kept catalog that 0001-era servers seeded (all its rows were inserted by one statement,
-- so they share the earliest created_at of the shared rows) is replaced by genai-prices at the next
-- start; rows an operator added later stay in force.
UPDATE prices SET retired_at = now()
 WHERE tenant_id = '' AND created_at = (SELECT min(created_at) FROM prices WHERE tenant_id = '');

-- Every import of the shared catalog; the latest row is the catalog in force. tenant_id '' like
-- the shared rows of prices (keys lead with tenant_id, as on every per-tenant table). providers:
-- the source's providers in its order, [{id, provider_match, fallbacks, unpriced}].
CREATE TABLE price_catalog_imports (
    tenant_id    text NOT NULL DEFAULT '',
    id           bigint GENERATED ALWAYS AS IDENTITY,
    source       text NOT NULL,
    version      text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    providers    jsonb NOT NULL DEFAULT '[]',
    summary      text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id)
);

-- Cost parts in nano-USD, in this order: input, output, cached read, cache write, requests, units,
-- other (client-supplied or reserved estimate), then cache savings (not part of the cost). The first
-- seven sum to cost_nanos. NULL: recorded before this migration (RepriceCalls fills it in).
ALTER TABLE calls ADD COLUMN cost_parts bigint[], ADD COLUMN service_tier text NOT NULL DEFAULT '';
ALTER TABLE call_ids ADD COLUMN cost_parts bigint[];

ALTER TABLE usage_hourly
    ADD COLUMN cost_input_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_output_nanos      numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cached_read_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cache_write_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_requests_nanos    numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_units_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_other_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cache_savings_nanos    numeric NOT NULL DEFAULT 0;
ALTER TABLE usage_model_hourly
    ADD COLUMN cost_input_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_output_nanos      numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cached_read_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cache_write_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_requests_nanos    numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_units_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_other_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cache_savings_nanos    numeric NOT NULL DEFAULT 0;
ALTER TABLE usage_model_daily
    ADD COLUMN cost_input_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_output_nanos      numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cached_read_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_cache_write_nanos numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_requests_nanos    numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_units_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cost_other_nanos       numeric NOT NULL DEFAULT 0,
    ADD COLUMN cache_savings_nanos    numeric NOT NULL DEFAULT 0;
