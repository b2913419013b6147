-- Alert channels (docs/alerts.md#channels): a rule delivers to Slack, Microsoft Teams, Discord,
-- email, PagerDuty or signed webhooks, each in its native format, with the rule's message template.
--
-- A delivery row per (alert, channel) is written by a trigger on alerts, so it commits or rolls
-- back with the alert whichever path raised it (counter trigger, call trigger, evaluator) and
-- meter_raise_alert (0005) stays as it is. Senders lease due rows with SKIP LOCKED, as for the
-- legacy alert_webhooks rows (which keep serving rules' webhook_url).

-- channels: a JSON array of channel objects (server/meterd/domain/channels.py, secrets included:
-- the API never returns them). message_template: '' means the built-in default.
ALTER TABLE alert_rules
    ADD COLUMN channels jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN message_template text NOT NULL DEFAULT '';

-- One row per alert and channel (channel = its index in the rule's channels array): the attempts,
-- the outcome and the last error of each delivery. `target` is where it went, without secrets.
CREATE TABLE alert_deliveries (
    tenant_id        text NOT NULL,
    alert_id         bigint NOT NULL,
    channel          integer NOT NULL,
    rule_id          text NOT NULL,
    kind             text NOT NULL,
    target           text NOT NULL DEFAULT '',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, alert_id, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- Alerts are rare (cooldowns and dedup keys bound them): one primary-key probe per alert. The
-- senders are woken by the alert's own NOTIFY (meter_alerts), through each replica's alert hub.
CREATE FUNCTION meter_queue_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_deliveries (tenant_id, alert_id, channel, rule_id, kind)
    SELECT NEW.tenant_id, NEW.id, (c.ord - 1)::integer, NEW.rule_id, c.value->>'kind'
      FROM alert_rules r, jsonb_array_elements(r.channels) WITH ORDINALITY AS c(value, ord)
     WHERE r.tenant_id = NEW.tenant_id AND r.id = NEW.rule_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_deliveries AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION meter_queue_deliveries();

-- Money in messages for people: dollars (cents from a cent up, else up to six decimals).
CREATE FUNCTION meter_usd(nanos numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(nanos) >= 10000000 OR nanos = 0
                THEN '$' || to_char(nanos / 1e9, 'FM999,999,999,999,990.00')
                ELSE '$' || trim_scale(round(nanos / 1e9, 6))::text END
$$;

-- 0005's meter_call_alerts with the message in dollars ("cost $0.10, over $0.01", not nano-USD);
-- the stored observed/threshold figures stay nano-USD. A new name, so a replica still running the
-- previous version keeps its own function until the trigger is repointed here.
CREATE FUNCTION meter_call_alerts_v2() RETURNS trigger LANGUAGE plpgsql AS $$
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
            format('call %s of %s (%s/%s) cost %s, over %s', NEW.call_id, NEW.subject, NEW.provider,
                   NEW.model, meter_usd(NEW.cost_nanos), meter_usd(r.amount)),
            NULL);
    END LOOP;
    RETURN NULL;
END
$$;

DROP TRIGGER calls_alerts ON calls;
CREATE TRIGGER calls_alerts AFTER INSERT ON calls
    FOR EACH ROW WHEN (NEW.cost_nanos > 0) EXECUTE FUNCTION meter_call_alerts_v2();
DROP FUNCTION meter_call_alerts();
