-- Quota engine: window arithmetic, the batched check/reserve function, usage application
-- (settlement or plain charge) and the expiry sweep. Counter rows are always locked in primary-key
-- order, so concurrent transactions touching several counters never deadlock.

-- Start of the window containing `at`. Calendar kinds are UTC; fixed and sliding are aligned to the epoch.
CREATE FUNCTION meter_window_start(kind text, seconds bigint, at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
        WHEN 'minute' THEN date_trunc('minute', at, 'UTC')
        WHEN 'hour' THEN date_trunc('hour', at, 'UTC')
        WHEN 'day' THEN date_trunc('day', at, 'UTC')
        WHEN 'week' THEN date_trunc('week', at, 'UTC')
        WHEN 'month' THEN date_trunc('month', at, 'UTC')
        ELSE to_timestamp((floor(extract(epoch FROM at) / seconds) * seconds)::double precision)
    END
$$;

-- Weighted share of the previous bucket still inside a sliding window ending at `at`, multiplied into
-- the previous bucket's amount and rounded up (never under-count). Exact: numeric arithmetic.
CREATE FUNCTION meter_sliding_carry(prev_amount bigint, seconds bigint, bucket_start timestamptz, at timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ceil(prev_amount * (seconds * 1000000 - (extract(epoch FROM at - bucket_start) * 1000000))
                / (seconds * 1000000))::bigint
$$;

CREATE TYPE meter_charge_status AS (
    req int,                -- 1-based request index in the batch
    allowed boolean,        -- the request's verdict (true for an existing reservation)
    existing boolean,       -- the reservation id already existed: nothing was changed
    charge int,             -- 1-based charge index in the batch
    window_start timestamptz,
    used bigint,            -- current bucket, after this request
    reserved bigint,
    prev_used bigint,       -- previous bucket's used + reserved (sliding windows only, else 0)
    prev_reserved bigint,   -- unused by meter_check (0); kept so the row type reads the same everywhere
    at timestamptz,         -- the clock reading every window was computed from
    expires_at timestamptz  -- the reservation's expiry (RESERVE requests)
);

-- Evaluates a batch of CheckQuota requests in arrival order inside one transaction. Each request is
-- all-or-nothing: its charges are added only if every DENY charge stays within its max, measured
-- against the counters as the earlier requests of the batch left them.
--   r_*: one element per request (r_client_id: the caller chose the reservation id, so a retry may
--        repeat it; server-made ids are unique and skip that check);
--   k_*: one element per distinct counter (tenant, limit, generation, partition, window kind/seconds);
--   c_*: one element per (request, matched limit), grouped by request, c_key indexing the k_* arrays.
CREATE FUNCTION meter_check(
    p_at timestamptz,
    r_tenant text[], r_reserve boolean[], r_reservation_id text[], r_client_id boolean[], r_ttl_ms bigint[],
    r_api_key text[], r_subject text[], r_provider text[], r_model text[], r_operation text[], r_labels jsonb[],
    r_estimate jsonb[], r_cost bigint[],
    k_tenant text[], k_limit text[], k_generation bigint[], k_partition text[], k_kind text[], k_seconds bigint[],
    c_req int[], c_key int[], c_metric text[], c_amount bigint[], c_max bigint[], c_deny boolean[]
) RETURNS SETOF meter_charge_status LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    n_req int := coalesce(array_length(r_tenant, 1), 0);
    n_charge int := coalesce(array_length(c_req, 1), 0);
    n_key int := coalesce(array_length(k_tenant, 1), 0);
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
        -- Computed once per distinct window (a batch has a handful), not once per counter.
        SELECT array_agg(s.w ORDER BY u.o) INTO k_start
          FROM unnest(k_kind, k_seconds) WITH ORDINALITY AS u(kind, secs, o)
          JOIN (SELECT kind, secs, meter_window_start(kind, secs, v_at) AS w
                  FROM (SELECT DISTINCT kind, secs FROM unnest(k_kind, k_seconds) AS x(kind, secs)) d) s
            ON (s.kind, s.secs) = (u.kind, u.secs);

        IF true = ANY (r_reserve) THEN
            -- Create missing counters and lock all of them, in key order. A batch of CHECK_ONLY
            -- requests skips this: it writes nothing, and a missing counter reads as zero.
            INSERT INTO counters AS c (tenant_id, limit_id, generation, partition_key, window_start)
            SELECT t, l, g, p, w FROM unnest(k_tenant, k_limit, k_generation, k_partition, k_start) AS u(t, l, g, p, w)
             ORDER BY t, l, g, p, w
            ON CONFLICT (tenant_id, limit_id, generation, partition_key, window_start)
            DO UPDATE SET used = c.used;
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
        k_delta := array_fill(0::bigint, ARRAY[n_key]);
    END IF;

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

    IF n_key > 0 AND true = ANY (r_reserve) THEN
        UPDATE counters c SET reserved = c.reserved + u.d
          FROM unnest(k_tenant, k_limit, k_generation, k_partition, k_start, k_delta) AS u(t, l, g, p, w, d)
         WHERE u.d <> 0
           AND (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (u.t, u.l, u.g, u.p, u.w);
    END IF;

    INSERT INTO reservations (tenant_id, id, api_key_id, subject, provider, model, operation, labels, estimate,
                              charges, cost_nanos, created_at, expires_at)
    SELECT u.t, u.id, r_api_key[u.i], r_subject[u.i], r_provider[u.i], r_model[u.i], r_operation[u.i],
           r_labels[u.i], r_estimate[u.i], u.charges, r_cost[u.i], v_at, u.expires
      FROM unnest(res_tenant, res_id, res_index, res_charges, res_expires) AS u(t, id, i, charges, expires);
END
$$;

-- Gives back a live reservation whose call did not happen: its charges leave the counters (locked in
-- key order) and it ends 'released'. Returns false when it was not live (unknown, settled, expired).
-- (Settlement by a recorded call happens in the record batch, server/meterd/store/records.py.)
CREATE FUNCTION meter_release_reservation(p_tenant text, p_at timestamptz, p_reservation_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_charges jsonb;
BEGIN
    UPDATE reservations SET state = 'released', ended_at = coalesce(p_at, now())
     WHERE tenant_id = p_tenant AND id = p_reservation_id AND state = 'active'
    RETURNING charges INTO v_charges;
    IF v_charges IS NULL THEN
        RETURN false;
    END IF;
    WITH charge AS (
        SELECT x->>'limit_id' AS l, (x->>'generation')::bigint AS g, x->>'partition' AS p,
               (x->>'window_start')::timestamptz AS w, sum((x->>'amount')::bigint)::bigint AS amount
          FROM jsonb_array_elements(v_charges) AS x
         GROUP BY 1, 2, 3, 4
    ), locked AS (
        SELECT c.tenant_id FROM counters c JOIN charge ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
                                                    = (p_tenant, charge.l, charge.g, charge.p, charge.w)
         ORDER BY c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start
           FOR UPDATE OF c
    )
    UPDATE counters c SET reserved = c.reserved - charge.amount
      FROM charge
     WHERE (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (p_tenant, charge.l, charge.g, charge.p, charge.w)
       AND (SELECT count(*) FROM locked) >= 0;
    RETURN true;
END
$$;

-- Adds to a live reservation (a streaming caller wants more tokens): all or nothing over its counters,
-- against the current max of each DENY limit (p_deny_limits/p_deny_max). Returns one row per counter
-- with allowed; when allowed the reservation's charges grow and its expiry moves to at + ttl.
CREATE FUNCTION meter_extend(
    p_tenant text, p_at timestamptz, p_reservation_id text, p_amounts jsonb, p_ttl_ms bigint,
    p_deny_limits text[], p_deny_max bigint[], p_sliding_seconds jsonb
) RETURNS TABLE (
    found boolean, allowed boolean, limit_id text, partition_key text, window_start timestamptz,
    used bigint, reserved bigint, prev_used bigint, prev_reserved bigint, expires_at timestamptz, cost_nanos bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    r record;
    ok boolean := true;
    x record;
    new_charges jsonb := '[]';
    held bigint;
    v_expires timestamptz;
    v_cost bigint;
BEGIN
    SELECT * INTO r FROM reservations
     WHERE tenant_id = p_tenant AND id = p_reservation_id AND state = 'active' FOR UPDATE;
    IF r IS NULL THEN
        RETURN QUERY SELECT false, false, NULL::text, NULL::text, NULL::timestamptz, NULL::bigint, NULL::bigint,
                            NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;

    -- Lock the reservation's counters in key order, then judge every DENY limit before changing any.
    PERFORM 1 FROM counters c, jsonb_array_elements(r.charges) AS ch
      WHERE (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
          = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition', (ch->>'window_start')::timestamptz)
      ORDER BY c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start
      FOR UPDATE OF c;

    FOR x IN
        SELECT ch, c.used AS cu, c.reserved AS cr, coalesce(pc.used, 0) + coalesce(pc.reserved, 0) AS prev,
               coalesce((p_amounts->>(ch->>'metric'))::bigint, 0) AS amount,
               (p_sliding_seconds->>(ch->>'limit_id'))::bigint AS sliding_s
          FROM jsonb_array_elements(r.charges) AS ch
          JOIN counters c ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
             = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition', (ch->>'window_start')::timestamptz)
          LEFT JOIN counters pc ON (p_sliding_seconds ? (ch->>'limit_id'))
           AND (pc.tenant_id, pc.limit_id, pc.generation, pc.partition_key, pc.window_start)
             = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition',
                (ch->>'window_start')::timestamptz - make_interval(secs => (p_sliding_seconds->>(ch->>'limit_id'))::bigint))
    LOOP
        IF (x.ch->>'limit_id') = ANY (p_deny_limits) AND x.amount > 0 THEN
            held := x.cu + x.cr;
            IF x.sliding_s IS NOT NULL THEN
                held := held + meter_sliding_carry(x.prev, x.sliding_s, (x.ch->>'window_start')::timestamptz, v_at);
            END IF;
            IF held + x.amount > p_deny_max[array_position(p_deny_limits, x.ch->>'limit_id')] THEN
                ok := false;
            END IF;
        END IF;
    END LOOP;

    v_expires := r.expires_at;
    v_cost := r.cost_nanos;
    IF ok THEN
        SELECT coalesce(jsonb_agg(ch || jsonb_build_object('amount', (ch->>'amount')::bigint
                   + coalesce((p_amounts->>(ch->>'metric'))::bigint, 0))), '[]')
          INTO new_charges FROM jsonb_array_elements(r.charges) AS ch;
        UPDATE counters c SET reserved = c.reserved + coalesce((p_amounts->>(ch->>'metric'))::bigint, 0)
          FROM jsonb_array_elements(r.charges) AS ch
         WHERE (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
             = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition', (ch->>'window_start')::timestamptz);
        v_expires := greatest(r.expires_at, v_at + make_interval(secs => p_ttl_ms / 1000.0));
        v_cost := r.cost_nanos + coalesce((p_amounts->>'cost_nanos')::bigint, 0);
        UPDATE reservations SET charges = new_charges, expires_at = v_expires, cost_nanos = v_cost,
                                estimate = estimate || jsonb_build_object('extended', coalesce((estimate->>'extended')::int, 0) + 1)
         WHERE tenant_id = p_tenant AND id = p_reservation_id;
    END IF;

    RETURN QUERY
    SELECT true, ok, c.limit_id, c.partition_key, c.window_start, c.used, c.reserved,
           coalesce(pc.used, 0), coalesce(pc.reserved, 0), v_expires, v_cost
      FROM jsonb_array_elements(r.charges) AS ch
      JOIN counters c ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start)
         = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition', (ch->>'window_start')::timestamptz)
      LEFT JOIN counters pc ON (p_sliding_seconds ? (ch->>'limit_id'))
       AND (pc.tenant_id, pc.limit_id, pc.generation, pc.partition_key, pc.window_start)
         = (p_tenant, ch->>'limit_id', (ch->>'generation')::bigint, ch->>'partition',
            (ch->>'window_start')::timestamptz - make_interval(secs => (p_sliding_seconds->>(ch->>'limit_id'))::bigint));
END
$$;

-- Releases reservations whose TTL has passed (never settled: a crashed or buggy caller). Their
-- estimates leave the counters; the rows stay, state 'expired', visible in usage and to alerts.
CREATE FUNCTION meter_expire_reservations(p_at timestamptz, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    n int;
BEGIN
    WITH expired AS (
        SELECT tenant_id, id, charges FROM reservations
         WHERE state = 'active' AND expires_at <= v_at
         ORDER BY expires_at LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), marked AS (
        UPDATE reservations r SET state = 'expired', ended_at = v_at
          FROM expired e WHERE (r.tenant_id, r.id) = (e.tenant_id, e.id)
        RETURNING r.tenant_id
    ), delta AS (
        SELECT e.tenant_id AS t, x->>'limit_id' AS l, (x->>'generation')::bigint AS g, x->>'partition' AS p,
               (x->>'window_start')::timestamptz AS w, sum((x->>'amount')::bigint)::bigint AS amount
          FROM expired e, jsonb_array_elements(e.charges) AS x
         GROUP BY 1, 2, 3, 4, 5
    ), locked AS (
        SELECT c.tenant_id FROM counters c JOIN delta d
            ON (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (d.t, d.l, d.g, d.p, d.w)
         ORDER BY c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start
           FOR UPDATE OF c
    ), released AS (
        UPDATE counters c SET reserved = c.reserved - d.amount
          FROM delta d
         WHERE (c.tenant_id, c.limit_id, c.generation, c.partition_key, c.window_start) = (d.t, d.l, d.g, d.p, d.w)
           AND (SELECT count(*) FROM locked) >= 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM marked) + 0 * (SELECT count(*) FROM released) INTO n;
    RETURN n;
END
$$;

-- Limit changes are announced so every replica drops its cached limits for the tenant.
CREATE FUNCTION meter_notify_limits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('meter_limits', coalesce(NEW.tenant_id, OLD.tenant_id));
    RETURN NULL;
END
$$;

CREATE TRIGGER limits_changed AFTER INSERT OR UPDATE OR DELETE ON limits
    FOR EACH ROW EXECUTE FUNCTION meter_notify_limits();

-- GetUsage reports reservations that expired unsettled.
CREATE INDEX reservations_expired ON reservations (tenant_id, created_at) WHERE state = 'expired';
