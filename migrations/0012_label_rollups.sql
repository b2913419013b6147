-- Rollups by label and by error code, a per-subject daily grain, and retry counts in every rollup.
--
-- A tenant declares which label keys are dimensions (label_dimensions). From then on the record
-- path adds every call, in its own transaction, to usage_label_hourly and usage_label_daily once per
-- declared key (under the call's value of that label, "" when it has none) and once under the
-- reserved key "" (empty: never a label key) whose value is the call's error code ("" for none). So
-- a GetUsage by a declared label or by error code reads a few rows per day, and keeps answering
-- after retention drops the raw calls. See docs/usage.md, "Label and error-code rollups".
--
-- Cardinality is bounded per (tenant, key, UTC day): the first max_values_per_day distinct values
-- of a day are admitted (dimension_values, counted in dimension_value_counts); later new values of
-- that day are added under '__other__'. Error codes (key "") admit 1,000 per day. The value "" (a
-- call without the label, a success) is never folded and not counted.
--
-- Writers of these tables hold an advisory lock on 'meter_dimensions/<tenant>': shared on the
-- record path, exclusive when declaring, deleting or back-filling, so a back-fill that recomputes
-- a day from raw calls never races a call being recorded into it.

CREATE TABLE label_dimensions (
    tenant_id           text NOT NULL REFERENCES tenants (id),
    label_key           text NOT NULL CHECK (char_length(label_key) BETWEEN 1 AND 64),
    max_values_per_day  integer NOT NULL CHECK (max_values_per_day BETWEEN 1 AND 100000),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, label_key)
);

CREATE TABLE dimension_values (
    tenant_id    text NOT NULL,
    label_key    text NOT NULL,
    day          timestamptz NOT NULL,
    label_value  text NOT NULL,
    PRIMARY KEY (tenant_id, label_key, day, label_value)
);

-- Locked (in key order) by a writer that admits new values, so two writers never both take the last slot.
CREATE TABLE dimension_value_counts (
    tenant_id  text NOT NULL,
    label_key  text NOT NULL,
    day        timestamptz NOT NULL,
    n          integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, label_key, day)
);

-- The key leads with label_key so one dimension's rows over a range are one index range.
CREATE TABLE usage_label_hourly (
    tenant_id               text NOT NULL,
    label_key               text NOT NULL,
    hour                    timestamptz NOT NULL,
    label_value             text NOT NULL,
    provider                text NOT NULL,
    model                   text NOT NULL,
    operation               text NOT NULL,
    calls                   bigint NOT NULL DEFAULT 0,
    errors                  bigint NOT NULL DEFAULT 0,
    input_tokens            bigint NOT NULL DEFAULT 0,
    output_tokens           bigint NOT NULL DEFAULT 0,
    cached_read_tokens      bigint NOT NULL DEFAULT 0,
    cache_write_tokens      bigint NOT NULL DEFAULT 0,
    reasoning_tokens        bigint NOT NULL DEFAULT 0,
    requests                bigint NOT NULL DEFAULT 0,
    units                   bigint NOT NULL DEFAULT 0,
    cost_nanos              numeric NOT NULL DEFAULT 0,
    unpriced_calls          bigint NOT NULL DEFAULT 0,
    latency_count           bigint NOT NULL DEFAULT 0,
    latency_sum_us          numeric NOT NULL DEFAULT 0,
    retry_count             bigint NOT NULL DEFAULT 0,
    cost_input_nanos        numeric NOT NULL DEFAULT 0,
    cost_output_nanos       numeric NOT NULL DEFAULT 0,
    cost_cached_read_nanos  numeric NOT NULL DEFAULT 0,
    cost_cache_write_nanos  numeric NOT NULL DEFAULT 0,
    cost_requests_nanos     numeric NOT NULL DEFAULT 0,
    cost_units_nanos        numeric NOT NULL DEFAULT 0,
    cost_other_nanos        numeric NOT NULL DEFAULT 0,
    cache_savings_nanos     numeric NOT NULL DEFAULT 0,
    latency_hist            jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, label_key, hour, label_value, provider, model, operation)
);

CREATE TABLE usage_label_daily (LIKE usage_label_hourly INCLUDING DEFAULTS);
ALTER TABLE usage_label_daily RENAME COLUMN hour TO day;
ALTER TABLE usage_label_daily ADD PRIMARY KEY (tenant_id, label_key, day, label_value, provider, model, operation);

-- Top users over weeks read one row per (day, subject, provider, model, operation) instead of 24.
CREATE TABLE usage_subject_daily (LIKE usage_label_hourly INCLUDING DEFAULTS);
ALTER TABLE usage_subject_daily DROP COLUMN label_key;
ALTER TABLE usage_subject_daily DROP COLUMN label_value;
ALTER TABLE usage_subject_daily RENAME COLUMN hour TO day;
ALTER TABLE usage_subject_daily ADD COLUMN subject text NOT NULL;
ALTER TABLE usage_subject_daily ADD PRIMARY KEY (tenant_id, day, subject, provider, model, operation);

-- Retries are summed from now on (calls recorded before this migration add 0).
ALTER TABLE usage_hourly ADD COLUMN retry_count bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_model_hourly ADD COLUMN retry_count bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_model_daily ADD COLUMN retry_count bigint NOT NULL DEFAULT 0;

-- Element-wise sum of sparse histograms, as an aggregate.
CREATE AGGREGATE meter_sparse_hist_sum(jsonb) (
    SFUNC = meter_sparse_hist_add,
    STYPE = jsonb,
    INITCOND = '{}'
);

-- Existing per-subject hours, summed into days once.
INSERT INTO usage_subject_daily (tenant_id, day, subject, provider, model, operation, calls, errors, input_tokens,
                                 output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, requests,
                                 units, cost_nanos, unpriced_calls, latency_count, latency_sum_us, cost_input_nanos,
                                 cost_output_nanos, cost_cached_read_nanos, cost_cache_write_nanos,
                                 cost_requests_nanos, cost_units_nanos, cost_other_nanos, cache_savings_nanos,
                                 latency_hist)
SELECT tenant_id, date_trunc('day', hour, 'UTC'), subject, provider, model, operation, sum(calls), sum(errors),
       sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens),
       sum(reasoning_tokens), sum(requests), sum(units), sum(cost_nanos), sum(unpriced_calls), sum(latency_count),
       sum(latency_sum_us), sum(cost_input_nanos), sum(cost_output_nanos), sum(cost_cached_read_nanos),
       sum(cost_cache_write_nanos), sum(cost_requests_nanos), sum(cost_units_nanos), sum(cost_other_nanos),
       sum(cache_savings_nanos), meter_sparse_hist_sum(latency_hist)
  FROM usage_hourly
 GROUP BY 1, 2, 3, 4, 5, 6;

-- Admit the candidate values p_values [{t, k, d, v}] (tenant, key, day, value) that are new, up to
-- each (tenant, key, day)'s bound, in value order; the others stay out (their calls go to '__other__').
-- Count rows are locked in key order, so concurrent writers never deadlock.
CREATE FUNCTION meter_admit_dimension_values_v1(p_values jsonb, p_error_code_max integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    v_used integer;
    v_max integer;
BEGIN
    FOR g IN SELECT DISTINCT c.t, c.k, c.d
               FROM jsonb_to_recordset(p_values) AS c(t text, k text, d timestamptz, v text)
              WHERE c.v <> '' AND NOT EXISTS (SELECT 1 FROM dimension_values x
                                 WHERE (x.tenant_id, x.label_key, x.day, x.label_value) = (c.t, c.k, c.d, c.v))
              ORDER BY 1, 2, 3
    LOOP
        IF g.k = '' THEN
            v_max := p_error_code_max;
        ELSE
            SELECT max_values_per_day INTO v_max FROM label_dimensions WHERE tenant_id = g.t AND label_key = g.k;
            CONTINUE WHEN v_max IS NULL;
        END IF;
        INSERT INTO dimension_value_counts AS n (tenant_id, label_key, day, n) VALUES (g.t, g.k, g.d, 0)
        ON CONFLICT (tenant_id, label_key, day) DO UPDATE SET n = n.n
        RETURNING n.n INTO v_used;
        -- Read again under the lock: a writer that held it may have admitted some of these values.
        WITH admitted AS (
            INSERT INTO dimension_values (tenant_id, label_key, day, label_value)
            SELECT g.t, g.k, g.d, v
              FROM (SELECT DISTINCT c.v FROM jsonb_to_recordset(p_values) AS c(t text, k text, d timestamptz, v text)
                     WHERE (c.t, c.k, c.d) = (g.t, g.k, g.d) AND c.v <> ''
                       AND NOT EXISTS (SELECT 1 FROM dimension_values x
                                        WHERE (x.tenant_id, x.label_key, x.day, x.label_value) = (g.t, g.k, g.d, c.v))
                   ) fresh
             ORDER BY v COLLATE "C"
             LIMIT greatest(v_max - v_used, 0)
            RETURNING 1
        )
        UPDATE dimension_value_counts SET n = n + (SELECT count(*) FROM admitted)
         WHERE (tenant_id, label_key, day) = (g.t, g.k, g.d);
    END LOOP;
END
$$;
