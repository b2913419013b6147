-- Rollups without the subject, so GetUsage questions that don't involve subjects (cost by model and
-- day, error rates by provider...) read a few rows per hour or day instead of one per active subject.
-- usage_model_hourly: per (tenant, hour, provider, model, operation); usage_model_daily: per UTC day.
-- Both are written by the record path in the same transaction as usage_hourly, with the same deltas
-- summed over subjects, and kept consistent by reprice. Columns mean what they mean in usage_hourly.

CREATE TABLE usage_model_hourly (
    tenant_id           text NOT NULL,
    hour                timestamptz NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    operation           text NOT NULL,
    calls               bigint NOT NULL DEFAULT 0,
    errors              bigint NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    requests            bigint NOT NULL DEFAULT 0,
    units               bigint NOT NULL DEFAULT 0,
    cost_nanos          numeric NOT NULL DEFAULT 0,
    unpriced_calls      bigint NOT NULL DEFAULT 0,
    latency_count       bigint NOT NULL DEFAULT 0,
    latency_sum_us      numeric NOT NULL DEFAULT 0,
    latency_buckets     bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[128]),
    PRIMARY KEY (tenant_id, hour, provider, model, operation)
) WITH (fillfactor = 70);

CREATE TABLE usage_model_daily (
    tenant_id           text NOT NULL,
    day                 timestamptz NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    operation           text NOT NULL,
    calls               bigint NOT NULL DEFAULT 0,
    errors              bigint NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    requests            bigint NOT NULL DEFAULT 0,
    units               bigint NOT NULL DEFAULT 0,
    cost_nanos          numeric NOT NULL DEFAULT 0,
    unpriced_calls      bigint NOT NULL DEFAULT 0,
    latency_count       bigint NOT NULL DEFAULT 0,
    latency_sum_us      numeric NOT NULL DEFAULT 0,
    latency_buckets     bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[128]),
    PRIMARY KEY (tenant_id, day, provider, model, operation)
) WITH (fillfactor = 70);

-- Element-wise sum of histograms, as an aggregate (used to build the tables below from usage_hourly).
CREATE AGGREGATE meter_hist_sum(bigint[]) (
    SFUNC = meter_hist_add,
    STYPE = bigint[],
    INITCOND = '{}'
);

-- Existing usage_hourly rows (recorded before this migration) are summed into the new tables once.
INSERT INTO usage_model_hourly
SELECT tenant_id, hour, provider, model, operation, sum(calls), sum(errors), sum(input_tokens),
       sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens),
       sum(requests), sum(units), sum(cost_nanos), sum(unpriced_calls), sum(latency_count),
       sum(latency_sum_us), meter_hist_sum(latency_buckets)
  FROM usage_hourly
 GROUP BY tenant_id, hour, provider, model, operation;

INSERT INTO usage_model_daily
SELECT tenant_id, date_trunc('day', hour, 'UTC'), provider, model, operation, sum(calls), sum(errors),
       sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens),
       sum(reasoning_tokens), sum(requests), sum(units), sum(cost_nanos), sum(unpriced_calls),
       sum(latency_count), sum(latency_sum_us), meter_hist_sum(latency_buckets)
  FROM usage_model_hourly
 GROUP BY 1, 2, 3, 4, 5;

-- usage_hourly rows are sparse (a subject sees a few calls an hour), so their latency histogram is
-- stored sparse too: {"bucket": count} with only the non-zero buckets, instead of 128 bigints
-- (about 1 KB) per row. This makes the table several times smaller, and queries by subject read it
-- that much faster. The subject-free tables above stay dense: their rows are few and full.
ALTER TABLE usage_hourly ADD COLUMN latency_hist jsonb NOT NULL DEFAULT '{}';
UPDATE usage_hourly
   SET latency_hist = (SELECT coalesce(jsonb_object_agg((o - 1)::text, n), '{}')
                         FROM unnest(latency_buckets) WITH ORDINALITY AS u(n, o) WHERE n <> 0);
ALTER TABLE usage_hourly DROP COLUMN latency_buckets;

-- Sum of two sparse histograms.
CREATE FUNCTION meter_sparse_hist_add(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}')
      FROM (SELECT k, sum(v::bigint) AS n
              FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e(k, v)
             GROUP BY k) s
$$;
