-- Alerts (docs/alerts.md). Tables alert_rules and alerts come from 0001; this adds what raises,
-- rate-limits and delivers alerts:
--   * meter_raise_alert: the one way an alert row is written (dedup key, cooldown, webhook queue,
--     NOTIFY), used by the triggers below and by the periodic evaluator;
--   * statement-level triggers on counters: limit threshold crossings, detected in the very
--     transaction that moves the counter (exactly once per rule, counter, window and level);
--   * a row trigger on calls: single-call cost;
--   * quota_denials: per-minute denial counts written off the check path, read by the evaluator.

-- End (exclusive) of the window that starts at `start`. Calendar arithmetic in UTC whatever the
-- session's time zone (triggers run in every session).
CREATE FUNCTION meter_window_end(kind text, seconds bigint, start timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
        WHEN 'minute' THEN start + interval '1 minute'
        WHEN 'hour' THEN start + interval '1 hour'
        WHEN 'day' THEN ((start AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
        WHEN 'week' THEN ((start AT TIME ZONE 'UTC') + interval '7 days') AT TIME ZONE 'UTC'
        WHEN 'month' THEN ((start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
        ELSE start + make_interval(secs => seconds)
    END
$$;

-- Does a rule's scope (the jsonb of a Selector: only the fields that are set) match a call?
CREATE FUNCTION meter_scope_matches(scope jsonb, p_subject text, p_provider text, p_model text, p_operation text,
                                    p_labels jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (scope->>'subject' IS NULL OR scope->>'subject' = p_subject)
       AND (scope->>'subject_prefix' IS NULL OR starts_with(p_subject, scope->>'subject_prefix'))
       AND (scope->>'provider' IS NULL OR lower(scope->>'provider') = lower(p_provider))
       AND (scope->>'model' IS NULL OR lower(scope->>'model') = lower(p_model))
       AND (scope->>'operation' IS NULL OR scope->>'operation' = p_operation)
       AND (scope->'labels' IS NULL OR coalesce(p_labels, '{}') @> (scope->'labels'))
$$;

-- Last alert per (rule, cooldown key); its row lock also serialises concurrent raisers of one rule.
CREATE TABLE alert_cooldowns (
    tenant_id     text NOT NULL,
    rule_id       text NOT NULL,
    cooldown_key  text NOT NULL,
    last_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, cooldown_key)
);

-- Webhook deliveries still owed (and their history): one row per alert of a rule with a webhook.
CREATE TABLE alert_webhooks (
    tenant_id        text NOT NULL,
    alert_id         bigint NOT NULL,
    rule_id          text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX alert_webhooks_due ON alert_webhooks (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- Quota denials per minute, flushed by each replica about once a second (never on the check path).
CREATE TABLE quota_denials (
    tenant_id  text NOT NULL,
    minute     timestamptz NOT NULL,
    subject    text NOT NULL,
    provider   text NOT NULL,
    model      text NOT NULL,
    operation  text NOT NULL,
    denials    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, minute, subject, provider, model, operation)
);

-- Reservations that expired, by when they expired (the evaluator's RESERVATION_EXPIRED look-up).
CREATE INDEX reservations_expired_at ON reservations (tenant_id, ended_at) WHERE state = 'expired';

-- Writes one alert unless its dedup key exists or the rule's cooldown for cooldown_key is running.
-- Returns the new id, or NULL when nothing was written.
--   dedup: the alert's identity, e.g. rule + counter + window + level: concurrent raisers of one
--          key produce one row (the unique index makes the second wait for the first, then skip);
--   cooldown: no second alert of the rule for the same cooldown key (subject) within cooldown_s.
CREATE FUNCTION meter_raise_alert(
    p_tenant text, p_rule text, p_kind text, p_severity text, p_cooldown_s bigint, p_cooldown_key text,
    p_dedup text, p_subject text, p_provider text, p_model text, p_limit text, p_metric text,
    p_observed double precision, p_threshold double precision, p_window_start timestamptz,
    p_window_end timestamptz, p_message text, p_at timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    v_prev timestamptz;
    v_id bigint;
BEGIN
    -- The stream reader's cursor needs every alert's transaction to hold its xid BEFORE it takes an
    -- alert id (server/meterd/service/alert_hub.py): make sure it does.
    PERFORM pg_current_xact_id();
    IF EXISTS (SELECT 1 FROM alerts WHERE tenant_id = p_tenant AND dedup_key = p_dedup) THEN
        RETURN NULL;
    END IF;
    IF p_cooldown_s > 0 THEN
        INSERT INTO alert_cooldowns (tenant_id, rule_id, cooldown_key, last_at)
        VALUES (p_tenant, p_rule, p_cooldown_key, '-infinity') ON CONFLICT DO NOTHING;
        SELECT last_at INTO v_prev FROM alert_cooldowns
         WHERE (tenant_id, rule_id, cooldown_key) = (p_tenant, p_rule, p_cooldown_key) FOR UPDATE;
        IF v_prev > v_at - make_interval(secs => p_cooldown_s) THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO alerts (tenant_id, rule_id, kind, severity, subject, provider, model, limit_id, metric, observed,
                        threshold, window_start, window_end, message, dedup_key, created_at)
    VALUES (p_tenant, p_rule, p_kind, p_severity, coalesce(p_subject, ''), coalesce(p_provider, ''),
            coalesce(p_model, ''), coalesce(p_limit, ''), coalesce(p_metric, ''), p_observed, p_threshold,
            p_window_start, p_window_end, p_message, p_dedup, coalesce(p_at, clock_timestamp()))
    ON CONFLICT (tenant_id, dedup_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_cooldown_s > 0 THEN
        UPDATE alert_cooldowns SET last_at = v_at
         WHERE (tenant_id, rule_id, cooldown_key) = (p_tenant, p_rule, p_cooldown_key);
    END IF;
    INSERT INTO alert_webhooks (tenant_id, alert_id, rule_id)
    SELECT p_tenant, v_id, p_rule FROM alert_rules
     WHERE tenant_id = p_tenant AND id = p_rule AND webhook_url <> '';
    -- A wake-up for every replica's stream hub (which then reads the rows): not the delivery itself.
    PERFORM pg_notify('meter_alerts', v_id::text);
    RETURN v_id;
END
$$;

-- Limit threshold alerts for counters whose `used` grew from old_used to used (one element per
-- counter; only counters whose whole percent moved are passed in). Every level L with
-- used * 100 >= L * max is raised unless its dedup key (rule, counter, window, level) exists: the
-- first transaction to take the counter there writes the alert (the counter's row lock orders
-- them, and the unique dedup key makes a second writer skip). Judging the level reached, not only
-- old < L <= new, also announces a level passed by lowering a limit's max or by adding a rule
-- mid-window, when the counter's whole percent next moves.
--   Rules: the tenant's LIMIT_THRESHOLD rules (optionally one limit_id, optionally per-subject
--   counters of a subject / prefix); levels from the rule, else the limit's alert_thresholds, else
--   80 and 100. A tenant without any LIMIT_THRESHOLD rule gets the built-in "(default)" rule:
--   warning below 100%, critical from 100%. SHADOW limits never alert.
CREATE FUNCTION meter_threshold_alerts(
    c_tenant text[], c_limit text[], c_generation bigint[], c_partition text[], c_window timestamptz[],
    c_old bigint[], c_used bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH c AS (
            SELECT * FROM unnest(c_tenant, c_limit, c_generation, c_partition, c_window, c_old, c_used)
                AS u(tenant_id, limit_id, generation, partition_key, window_start, old_used, used)
        ), hit AS (
            SELECT c.*, l.max, l.metric, l.window_kind, l.window_seconds, l.partition_by, l.alert_thresholds
              FROM c JOIN limits l ON (l.tenant_id, l.id, l.generation) = (c.tenant_id, c.limit_id, c.generation)
             WHERE l.action <> 'shadow'
        ), rules AS (
            SELECT ar.tenant_id, ar.id, ar.severity, ar.cooldown_s, ar.disabled, ar.scope, ar.params
              FROM alert_rules ar
             WHERE ar.kind = 'limit_threshold' AND ar.tenant_id IN (SELECT DISTINCT tenant_id FROM hit)
        ), applied AS (
            SELECT h.*, ar.id AS rule_id, ar.severity, ar.cooldown_s,
                   coalesce(nullif(ARRAY(SELECT jsonb_array_elements_text(ar.params->'thresholds'))::int[], '{}'),
                            nullif(h.alert_thresholds, '{}'), '{80,100}') AS levels
              FROM hit h JOIN rules ar ON ar.tenant_id = h.tenant_id AND NOT ar.disabled
               AND coalesce(ar.params->>'limit_id', '') IN ('', h.limit_id)
               AND (ar.scope->>'subject' IS NULL
                    OR (h.partition_by = 'per_subject' AND h.partition_key = ar.scope->>'subject'))
               AND (ar.scope->>'subject_prefix' IS NULL
                    OR (h.partition_by = 'per_subject' AND starts_with(h.partition_key, ar.scope->>'subject_prefix')))
            UNION ALL
            SELECT h.*, '(default)', NULL, 0, coalesce(nullif(h.alert_thresholds, '{}'), '{80,100}')
              FROM hit h WHERE NOT EXISTS (SELECT 1 FROM rules ar WHERE ar.tenant_id = h.tenant_id)
        )
        SELECT a.*, lv.level FROM applied a, unnest(a.levels) AS lv(level)
         WHERE a.used::numeric * 100 >= lv.level::numeric * a.max
         -- One order for every transaction: the cooldown rows and dedup keys are taken in it.
         ORDER BY a.tenant_id, a.rule_id, a.limit_id, a.partition_key, a.window_start, lv.level
    LOOP
        PERFORM meter_raise_alert(
            r.tenant_id, r.rule_id, 'limit_threshold',
            coalesce(r.severity, CASE WHEN r.level >= 100 THEN 'critical' ELSE 'warning' END),
            r.cooldown_s, r.limit_id || '/' || r.partition_key,
            format('lt/%s/%s/%s/%s/%s/%s', r.rule_id, r.limit_id, r.generation, r.partition_key,
                   extract(epoch FROM r.window_start)::bigint, r.level),
            CASE WHEN r.partition_by = 'per_subject' THEN r.partition_key ELSE '' END, '', '', r.limit_id, r.metric,
            (r.used::numeric * 100 / r.max)::double precision, r.level,
            r.window_start, meter_window_end(r.window_kind, r.window_seconds, r.window_start),
            format('limit %s reached %s%% of its max: %s of %s %s in the %s window from %s UTC%s',
                   r.limit_id, r.level, r.used, r.max, r.metric, r.window_kind,
                   to_char(r.window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                   CASE WHEN r.partition_key <> '' THEN ' (' || r.partition_by || ' ' || r.partition_key || ')' ELSE '' END),
            NULL);
    END LOOP;
END
$$;

-- Did the counter's whole percent of max move (below 1000%, the highest level allowed)? Levels are
-- whole percents, so no level can be reached between two moves (old*100 < L*max <= new*100 implies
-- floor(new*100/max) >= L > floor(old*100/max)). False for nearly every increment of a large limit:
-- the rule join runs only when it is true.
CREATE FUNCTION meter_percent_moved(old_used bigint, new_used bigint, max bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT old_used::numeric * 100 < max::numeric * 1000
       AND floor(new_used::numeric * 100 / max) > floor(old_used::numeric * 100 / max)
$$;

-- Statement-level, so a record batch that moves 500 counters runs one query, not 500 functions. Only
-- counters whose `used` grew count (a reservation moves `reserved`: crossings are about settled use),
-- and only those whose whole percent moved reach the rule join.
CREATE FUNCTION meter_counters_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text[]; l text[]; g bigint[]; p text[]; w timestamptz[]; o bigint[]; u bigint[];
BEGIN
    SELECT array_agg(n.tenant_id), array_agg(n.limit_id), array_agg(n.generation), array_agg(n.partition_key),
           array_agg(n.window_start), array_agg(x.used), array_agg(n.used)
      INTO t, l, g, p, w, o, u
      FROM new_counters n JOIN old_counters x USING (tenant_id, limit_id, generation, partition_key, window_start)
      JOIN limits lim ON (lim.tenant_id, lim.id, lim.generation) = (n.tenant_id, n.limit_id, n.generation)
     WHERE n.used > x.used AND meter_percent_moved(x.used, n.used, lim.max);
    IF t IS NOT NULL THEN
        PERFORM meter_threshold_alerts(t, l, g, p, w, o, u);
    END IF;
    RETURN NULL;
END
$$;

-- New counters: a row trigger whose WHEN clause (evaluated without calling any function) skips the
-- counters created empty by RESERVE checks; a counter born with used > 0 is once per window. A
-- statement trigger here would cost every upsert statement a second trigger call.
CREATE FUNCTION meter_counter_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM limits l WHERE (l.tenant_id, l.id, l.generation) = (NEW.tenant_id, NEW.limit_id, NEW.generation)
                 AND meter_percent_moved(0, NEW.used, l.max)) THEN
        PERFORM meter_threshold_alerts(ARRAY[NEW.tenant_id], ARRAY[NEW.limit_id], ARRAY[NEW.generation],
                                       ARRAY[NEW.partition_key], ARRAY[NEW.window_start], ARRAY[0::bigint],
                                       ARRAY[NEW.used]);
    END IF;
    RETURN NULL;
END
$$;

-- INSERT ... ON CONFLICT DO UPDATE fires both: the inserted rows in the first, the updated ones
-- (old and new versions, in one statement-level call) in the second.
CREATE TRIGGER counters_alerts_insert AFTER INSERT ON counters
    FOR EACH ROW WHEN (NEW.used > 0) EXECUTE FUNCTION meter_counter_inserted();
CREATE TRIGGER counters_alerts_update AFTER UPDATE ON counters
    REFERENCING OLD TABLE AS old_counters NEW TABLE AS new_counters
    FOR EACH STATEMENT EXECUTE FUNCTION meter_counters_updated();

-- CALL_COST: one alert per call over the rule's amount (dedup by call id), in the recording
-- transaction. A row trigger, skipped by its WHEN clause
-- for free calls; the rule look-up is one index probe on alert_rules' primary key.
CREATE FUNCTION meter_call_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT ar.id, ar.severity, ar.cooldown_s, (ar.params->>'amount_nanos')::bigint AS amount
          FROM alert_rules ar
         WHERE ar.tenant_id = NEW.tenant_id AND ar.kind = 'call_cost' AND NOT ar.disabled
           AND NEW.cost_nanos > (ar.params->>'amount_nanos')::bigint
           AND meter_scope_matches(ar.scope, NEW.subject, NEW.provider, NEW.model, NEW.operation, NEW.labels)
         ORDER BY ar.id
    LOOP
        PERFORM meter_raise_alert(
            NEW.tenant_id, r.id, 'call_cost', r.severity, r.cooldown_s, NEW.subject,
            format('cc/%s/%s', r.id, NEW.call_id),
            NEW.subject, NEW.provider, NEW.model, '', 'cost_nanos', NEW.cost_nanos, r.amount, NULL, NULL,
            format('call %s of %s (%s/%s) cost %s nano-USD, over %s', NEW.call_id, NEW.subject, NEW.provider,
                   NEW.model, NEW.cost_nanos, r.amount),
            NULL);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_alerts AFTER INSERT ON calls
    FOR EACH ROW WHEN (NEW.cost_nanos > 0) EXECUTE FUNCTION meter_call_alerts();
