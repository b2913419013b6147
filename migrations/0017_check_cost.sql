-- What PostgreSQL spends per CheckQuota batch (issue 15): meter_check_v2, and a counter trigger that
-- skips statements which cannot move `used`.
--
-- Measured on 0002's meter_check, per batch whatever its size: every statement of the function was
-- planned again at each call (the plan cache's custom plans, since unnest() of a parameter looks
-- cheaper to a custom plan than to a generic one), a RESERVE batch wrote every counter twice (the
-- locking upsert `DO UPDATE SET used = c.used`, then the reserved UPDATE), and each of those two
-- statements ran the counter trigger's join, planned by EXECUTE, although a reservation never
-- changes `used`. CHECK_ONLY batches ran the per-request loop and an empty reservations INSERT.
--
-- meter_check_v2 takes the same arguments and returns the same rows, with the same deny rule
-- (tests/integration/test_rule_parity.py holds it to domain.quota's):
--   * plans are generic, made once per session, and can only be nested loops over the primary key:
--     linear in the batch and independent of the table's size or statistics when planned
--     (tests/integration/test_plan_stability.py). These settings hold for triggers its statements
--     fire too; none of them runs a join here (the upsert updates no row, the reserved UPDATE is
--     skipped by the trigger below, and inserted counters have used = 0, which the insert trigger's
--     WHEN leaves alone);
--   * a batch without RESERVE requests is one set-based read of its counters (one index scan per
--     counter, nothing written);
--   * a RESERVE batch locks its counters in key order with `ON CONFLICT DO UPDATE ... WHERE false`
--     (every conflicting row is locked, none rewritten) and writes each counter once.
-- 0002's meter_check stays, unchanged: replicas of the previous version call it during a rolling
-- upgrade (docs/operations.md#rolling-upgrades); both enforce the same counters.

CREATE FUNCTION meter_check_v2(
    p_at timestamptz,
    r_tenant text[], r_reserve boolean[], r_reservation_id text[], r_client_id boolean[], r_ttl_ms bigint[],
    r_api_key text[], r_subject text[], r_provider text[], r_model text[], r_operation text[], r_labels jsonb[],
    r_estimate jsonb[], r_cost bigint[],
    k_tenant text[], k_limit text[], k_generation bigint[], k_partition text[], k_kind text[], k_seconds bigint[],
    c_req int[], c_key int[], c_metric text[], c_amount bigint[], c_max bigint[], c_deny boolean[]
) RETURNS SETOF meter_charge_status LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off
SET enable_mergejoin = off AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    n_req int := coalesce(array_length(r_tenant, 1), 0);
    n_charge int := coalesce(array_length(c_req, 1), 0);
    n_key int := coalesce(array_length(k_tenant, 1), 0);
    any_reserve boolean := coalesce(true = ANY (r_reserve), false);
    k_start timestamptz[];
    k_used bigint[];
    k_reserved bigint[];
    k_delta bigint[];
    k_prev bigint[];           -- previous bucket's used + reserved (sliding windows)
    existing_ids text[] := '{}';
    i int;
    j int;
    k int;
    j_first int := 1;
    j_last int;
    ok boolean;
    is_existing boolean;
    effective bigint;
    charges jsonb;
    out_expires timestamptz;
    res_tenant text[] := '{}'; res_id text[] := '{}'; res_index int[] := '{}'; res_charges jsonb[] := '{}';
    res_expires timestamptz[] := '{}';
    st meter_charge_status;
BEGIN
    IF n_key > 0 THEN
        -- A batch has a handful of distinct windows: each start is computed once, not once per counter.
        SELECT array_agg(s.w ORDER BY u.o) INTO k_start
          FROM unnest(k_kind, k_seconds) WITH ORDINALITY AS u(kind, secs, o)
          JOIN (SELECT kind, secs, meter_window_start(kind, secs, v_at) AS w
                  FROM (SELECT DISTINCT kind, secs FROM unnest(k_kind, k_seconds) AS x(kind, secs)) d) s
            ON (s.kind, s.secs) = (u.kind, u.secs);

        IF any_reserve THEN
            -- Create missing counters and lock all of them, in key order, in one pass. WHERE false:
            -- a conflicting row is locked but not rewritten (no new row version, nothing for the
            -- counter trigger to look at).
            INSERT INTO counters AS c (tenant_id, limit_id, generation, partition_key, window_start)
            SELECT t, l, g, p, w FROM unnest(k_tenant, k_limit, k_generation, k_partition, k_start) AS u(t, l, g, p, w)
             ORDER BY t, l, g, p, w
            ON CONFLICT (tenant_id, limit_id, generation, partition_key, window_start)
            DO UPDATE SET used = c.used WHERE false;
        END IF;

        SELECT array_agg(coalesce(c.used, 0) ORDER BY u.o), array_agg(coalesce(c.reserved, 0) ORDER BY u.o),
               array_agg(coalesce(pc.used + pc.reserved, 0) ORDER BY u.o)
          INTO k_used, k_reserved, k_prev
          FROM unnest(k_tenant, k_limit, k_generation, k_partition, k_start, k_kind, k_seconds)
               WITH ORDINALITY AS u(t, l, g, p, w, kind, secs, o)
          LEFT JOIN counters c ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (u.t, u.l, u.g, u.p, u.w)
          -- The previous bucket of a sliding window is only read: it takes no new reservations.
          LEFT JOIN counters pc ON u.kind = 'sliding'
           AND (pc.tenant_id, pc.limit_id, pc.generation, pc.partition_key, pc.window_start)
             = (u.t, u.l, u.g, u.p, u.w - make_interval(secs => u.secs));
    END IF;

    IF NOT any_reserve THEN
        -- CHECK_ONLY requests change no counter, so each is judged against the counters as read:
        -- one set-based statement, the deny rule of the loop below (and of domain.quota.denies).
        RETURN QUERY
        SELECT x.req, bool_and(x.ok) OVER (PARTITION BY x.req), false, x.j::int, k_start[x.k], k_used[x.k],
               k_reserved[x.k], k_prev[x.k], 0::bigint, v_at, NULL::timestamptz
          FROM (SELECT ch.req, ch.j, ch.k,
                       NOT ch.deny OR NOT (e.effective + ch.amount > ch.mx OR (ch.amount = 0 AND e.effective >= ch.mx)) AS ok
                  FROM unnest(c_req, c_key, c_amount, c_max, c_deny) WITH ORDINALITY AS ch(req, k, amount, mx, deny, j),
                       LATERAL (SELECT k_used[ch.k] + k_reserved[ch.k]
                                       + CASE WHEN k_kind[ch.k] = 'sliding'
                                              THEN meter_sliding_carry(k_prev[ch.k], k_seconds[ch.k], k_start[ch.k], v_at)
                                              ELSE 0 END AS effective) e) x
        UNION ALL
        -- No limit matched: one row so the caller still gets the verdict.
        SELECT r.i::int, true, false, NULL::int, NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint,
               NULL::bigint, v_at, NULL::timestamptz
          FROM (SELECT g FROM generate_series(1, n_req) g EXCEPT SELECT DISTINCT cr FROM unnest(c_req) cr) r(i)
         ORDER BY 1, 4;
        RETURN;
    END IF;

    k_delta := array_fill(0::bigint, ARRAY[n_key]);
    IF true = ANY (r_client_id) THEN
        -- A retried RESERVE may repeat a client-chosen id in another batch at the same moment:
        -- serialise same-id requests (advisory locks in sorted order; taken after the counter locks by
        -- every batch alike, so they cannot cross).
        PERFORM pg_advisory_xact_lock(hashtextextended(x, 0))
           FROM (SELECT DISTINCT t || '/' || id AS x
                   FROM unnest(r_tenant, r_reservation_id, r_reserve, r_client_id) AS u(t, id, rv, cl)
                  WHERE rv AND cl ORDER BY 1) ids;
        SELECT coalesce(array_agg(r.tenant_id || '/' || r.id), '{}') INTO existing_ids
          FROM reservations r
          JOIN unnest(r_tenant, r_reservation_id, r_client_id) AS u(t, id, cl) ON (r.tenant_id, r.id) = (u.t, u.id)
         WHERE u.cl;
    END IF;

    FOR i IN 1 .. n_req LOOP
        j_last := j_first - 1;
        WHILE j_last < n_charge AND c_req[j_last + 1] = i LOOP
            j_last := j_last + 1;
        END LOOP;

        is_existing := r_reserve[i] AND r_client_id[i] AND (r_tenant[i] || '/' || r_reservation_id[i]) = ANY (existing_ids);
        ok := true;
        IF NOT is_existing THEN
            FOR j IN j_first .. j_last LOOP
                IF c_deny[j] THEN
                    k := c_key[j];
                    effective := k_used[k] + k_reserved[k];
                    IF k_kind[k] = 'sliding' THEN
                        effective := effective + meter_sliding_carry(k_prev[k], k_seconds[k], k_start[k], v_at);
                    END IF;
                    IF effective + c_amount[j] > c_max[j] OR (c_amount[j] = 0 AND effective >= c_max[j]) THEN
                        ok := false;
                    END IF;
                END IF;
            END LOOP;
        END IF;

        out_expires := NULL;
        IF ok AND r_reserve[i] AND NOT is_existing THEN
            charges := '[]'::jsonb;
            FOR j IN j_first .. j_last LOOP
                k := c_key[j];
                k_reserved[k] := k_reserved[k] + c_amount[j];
                k_delta[k] := k_delta[k] + c_amount[j];
                charges := charges || jsonb_build_object(
                    'limit_id', k_limit[k], 'generation', k_generation[k], 'partition', k_partition[k],
                    'window_start', k_start[k], 'metric', c_metric[j], 'amount', c_amount[j]);
            END LOOP;
            out_expires := v_at + make_interval(secs => r_ttl_ms[i] / 1000.0);
            res_tenant := res_tenant || r_tenant[i];
            res_id := res_id || r_reservation_id[i];
            res_index := res_index || i;
            res_charges := res_charges || charges;
            res_expires := res_expires || out_expires;
            IF r_client_id[i] THEN
                existing_ids := existing_ids || (r_tenant[i] || '/' || r_reservation_id[i]);
            END IF;
        ELSIF is_existing THEN
            SELECT r.expires_at INTO out_expires FROM reservations r
             WHERE (r.tenant_id, r.id) = (r_tenant[i], r_reservation_id[i]);
            IF out_expires IS NULL THEN  -- reserved earlier in this same batch
                out_expires := res_expires[array_position(res_id, r_reservation_id[i])];
            END IF;
        END IF;

        IF j_last < j_first THEN
            -- No limit matched: one row so the caller still gets the verdict (and expiry).
            st := (i, ok, is_existing, NULL, NULL, NULL, NULL, NULL, NULL, v_at, out_expires);
            RETURN NEXT st;
        END IF;
        FOR j IN j_first .. j_last LOOP
            k := c_key[j];
            st := (i, ok OR is_existing, is_existing, j, k_start[k], k_used[k], k_reserved[k],
                   k_prev[k], 0, v_at, out_expires);
            RETURN NEXT st;
        END LOOP;
        j_first := j_last + 1;
    END LOOP;

    IF n_key > 0 AND 0 <> ANY (k_delta) THEN
        -- Moves `reserved` only: the counter trigger, which looks for `used` crossing a threshold,
        -- is told to skip this statement (transaction-local, switched off again at once).
        PERFORM set_config('meter.reserved_only', 'on', true);
        UPDATE counters c SET reserved = c.reserved + u.d
          FROM unnest(k_tenant, k_limit, k_generation, k_partition, k_start, k_delta) AS u(t, l, g, p, w, d)
         WHERE u.d <> 0
           AND (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (u.t, u.l, u.g, u.p, u.w);
        PERFORM set_config('meter.reserved_only', '', true);
    END IF;

    IF res_id <> '{}' THEN
        INSERT INTO reservations (tenant_id, id, api_key_id, subject, provider, model, operation, labels, estimate,
                                  charges, cost_nanos, created_at, expires_at)
        SELECT u.t, u.id, r_api_key[u.i], r_subject[u.i], r_provider[u.i], r_model[u.i], r_operation[u.i],
               r_labels[u.i], r_estimate[u.i], u.charges, r_cost[u.i], v_at, u.expires
          FROM unnest(res_tenant, res_id, res_index, res_charges, res_expires) AS u(t, id, i, charges, expires);
    END IF;
END
$$;

-- 0011's counter trigger, with two early exits that need no join: a statement that changed no row
-- (meter_check_v2's locking upsert; the UPDATE half of any upsert that only inserted), and a
-- statement that declared it moves `reserved` only (meter_check_v2's UPDATE). Anything else runs
-- 0011's body unchanged, so the trigger stays exact for every writer, old replicas included.
CREATE FUNCTION meter_counters_updated_v3() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text[]; l text[]; g bigint[]; p text[]; w timestamptz[]; o bigint[]; u bigint[];
BEGIN
    IF current_setting('meter.reserved_only', true) = 'on' OR NOT EXISTS (SELECT 1 FROM new_counters) THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$
        SELECT array_agg(n.tenant_id), array_agg(n.limit_id), array_agg(n.generation), array_agg(n.partition_key),
               array_agg(n.window_start), array_agg(x.used), array_agg(n.used)
          FROM new_counters n JOIN old_counters x USING (tenant_id, limit_id, generation, partition_key, window_start)
          JOIN limits lim ON (lim.tenant_id, lim.id, lim.generation) = (n.tenant_id, n.limit_id, n.generation)
         WHERE n.used > x.used AND meter_percent_moved(x.used, n.used, lim.max)
    $q$ INTO t, l, g, p, w, o, u;
    IF t IS NOT NULL THEN
        PERFORM meter_threshold_alerts_v2(t, l, g, p, w, o, u);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER counters_alerts_update ON counters;
CREATE TRIGGER counters_alerts_update AFTER UPDATE ON counters
    REFERENCING OLD TABLE AS old_counters NEW TABLE AS new_counters
    FOR EACH STATEMENT EXECUTE FUNCTION meter_counters_updated_v3();
-- meter_counters_updated_v2 stays until the release that drops old functions (nothing calls it now).
