-- Plans that stay linear in the batch size, whatever the session planned before.
--
-- PL/pgSQL prepares each statement once per session and keeps the plan. A statement without
-- parameters (the counter trigger's join over its transition tables) always keeps its first, generic
-- plan: made on transition tables of a row or two, it is a nested loop, and a later 5,000-counter
-- batch ran 130x slower through it than in a fresh session (tests/integration/test_plan_stability.py).
-- EXECUTE plans the statement at each call, with the transition tables' real sizes; planning costs
-- tens of microseconds, once per statement, not per row.
--
-- Same name and signature as 0005's function, and the same behaviour: a replica of the previous
-- version that shares the database during a rolling upgrade runs this body too, unaffected.
CREATE OR REPLACE FUNCTION meter_counters_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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
        PERFORM meter_threshold_alerts(t, l, g, p, w, o, u);
    END IF;
    RETURN NULL;
END
$$;

-- The functions that take their batch as array parameters: a generic plan (which PostgreSQL may pick
-- after five executions) estimates every unnest() at a fixed size and every table at the size it had
-- then; a custom plan sees the batch and the current statistics. Planning is cheap next to a batch.
ALTER FUNCTION meter_threshold_alerts(text[], text[], bigint[], text[], timestamptz[], bigint[], bigint[])
    SET plan_cache_mode = force_custom_plan;
