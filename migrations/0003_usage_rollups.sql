-- Hourly usage rollups, written in the same transaction as the calls they summarise, so GetUsage
-- over months reads rollups and never scans raw calls. Latency is a fixed log-bucket histogram
-- (see server/meterd/domain/histogram.py): bucket i counts latencies in [2^(i/4), 2^((i+1)/4)) µs.

CREATE TABLE usage_hourly (
    tenant_id           text NOT NULL,
    hour                timestamptz NOT NULL,
    subject             text NOT NULL,
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
    PRIMARY KEY (tenant_id, hour, subject, provider, model, operation)
);

-- Element-wise sum of two histograms.
CREATE FUNCTION meter_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY o) FROM unnest(a, b) WITH ORDINALITY AS u(x, y, o)
$$;

-- Raw calls get one partition per calendar month (UTC), created ahead of time, so retention drops
-- whole months. Rows that arrive for a month without a partition land in calls_default.
CREATE FUNCTION meter_ensure_calls_partition(p_month timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_start timestamptz := date_trunc('month', p_month, 'UTC');
    v_name text := 'calls_' || to_char(v_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(v_name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF calls FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_start, v_start + interval '1 month');
    END IF;
    RETURN v_name;
END
$$;

-- Listing recent calls newest first, per tenant.
CREATE INDEX calls_recent ON calls (tenant_id, occurred_at DESC, call_id);

-- A histogram plus sparse counts {"bucket": count} (what a batch of records adds to one rollup row).
CREATE FUNCTION meter_hist_add_sparse(dense bigint[], sparse jsonb) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(d + coalesce((sparse ->> (o - 1)::text)::bigint, 0) ORDER BY o)
      FROM unnest(coalesce(dense, array_fill(0::bigint, ARRAY[128]))) WITH ORDINALITY AS u(d, o)
$$;
