-- Threshold alerts name the subject of a shared limit whose selector is one exact subject.
--
-- 0005's meter_threshold_alerts gave such alerts subject '' (only per-subject counters had one), so
-- StreamAlerts' subject_prefix filter and subject-scoped LIMIT_THRESHOLD rules could not select them.
-- The counter's subject is now its partition (per-subject limits) or the selector's exact subject
-- (shared limits); rule scopes (subject, subject_prefix) match it the same way. Otherwise the same
-- rules as 0005 (see its comments), with 0006's plan settings.
--
-- Released functions keep their bodies: the changed ones get _v2 names, the two counter triggers are
-- pointed at them, and the old functions are dropped once nothing calls them.
CREATE FUNCTION meter_threshold_alerts_v2(
    c_tenant text[], c_limit text[], c_generation bigint[], c_partition text[], c_window timestamptz[],
    c_old bigint[], c_used bigint[]
) RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH c AS (
            SELECT * FROM unnest(c_tenant, c_limit, c_generation, c_partition, c_window, c_old, c_used)
                AS u(tenant_id, limit_id, generation, partition_key, window_start, old_used, used)
        ), hit AS (
            SELECT c.*, l.max, l.metric, l.window_kind, l.window_seconds, l.partition_by, l.alert_thresholds,
                   -- The subject a counter belongs to: its partition, or the one subject a shared
                   -- limit's selector names exactly ('' when it counts many subjects).
                   CASE WHEN l.partition_by = 'per_subject' THEN c.partition_key
                        ELSE coalesce(l.selector->>'subject', '') END AS subject
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
               AND (ar.scope->>'subject' IS NULL OR (h.subject <> '' AND h.subject = ar.scope->>'subject'))
               AND (ar.scope->>'subject_prefix' IS NULL
                    OR (h.subject <> '' AND starts_with(h.subject, ar.scope->>'subject_prefix')))
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
            r.subject, '', '', r.limit_id, r.metric,
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

CREATE FUNCTION meter_counters_updated_v2() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text[]; l text[]; g bigint[]; p text[]; w timestamptz[]; o bigint[]; u bigint[];
BEGIN
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

CREATE FUNCTION meter_counter_inserted_v2() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM limits l WHERE (l.tenant_id, l.id, l.generation) = (NEW.tenant_id, NEW.limit_id, NEW.generation)
                 AND meter_percent_moved(0, NEW.used, l.max)) THEN
        PERFORM meter_threshold_alerts_v2(ARRAY[NEW.tenant_id], ARRAY[NEW.limit_id], ARRAY[NEW.generation],
                                       ARRAY[NEW.partition_key], ARRAY[NEW.window_start], ARRAY[0::bigint],
                                       ARRAY[NEW.used]);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER counters_alerts_insert ON counters;
DROP TRIGGER counters_alerts_update ON counters;
CREATE TRIGGER counters_alerts_insert AFTER INSERT ON counters
    FOR EACH ROW WHEN (NEW.used > 0) EXECUTE FUNCTION meter_counter_inserted_v2();
CREATE TRIGGER counters_alerts_update AFTER UPDATE ON counters
    REFERENCING OLD TABLE AS old_counters NEW TABLE AS new_counters
    FOR EACH STATEMENT EXECUTE FUNCTION meter_counters_updated_v2();

DROP FUNCTION meter_counter_inserted();
DROP FUNCTION meter_counters_updated();
DROP FUNCTION meter_threshold_alerts(text[], text[], bigint[], text[], timestamptz[], bigint[], bigint[]);
