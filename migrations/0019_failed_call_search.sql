-- ListCalls filtered by an error code: failed calls are few, so two partial indexes over them let
-- "error code 429, newest first" and "..., dearest first" read only the matching calls. Without
-- them, on 5 million calls, the dearest-first search walked calls_by_cost through every call of the
-- tenant and hit the statement timeout. The filter reads `NOT success AND error_code = $1`
-- (store/usage_filter.py), which these predicates match. Built on every monthly partition; the
-- table is locked against writes while they build (a few seconds per million calls).
CREATE INDEX calls_failed_recent ON calls (tenant_id, error_code, occurred_at DESC, call_id) WHERE NOT success;
CREATE INDEX calls_failed_by_cost ON calls (tenant_id, error_code, cost_nanos DESC, occurred_at DESC, call_id)
    WHERE NOT success;
