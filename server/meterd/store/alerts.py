"""Alert rules, alert rows, the evaluator's reads, webhook deliveries and denial counts: all the SQL
of the alert engine (migrations/0005_alerts.sql holds the triggers and meter_raise_alert)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from meterd.domain import histogram
from meterd.domain.alert_records import DenialKey, StoredRule, TenantRule, WebhookDue
from meterd.domain.alerts import Alert, AlertFilter, AlertKind, AlertRule, Candidate, GroupFigures, Severity
from meterd.domain.errors import NotFound
from meterd.domain.rule_secrets import keep_webhook
from meterd.store.alert_rules import rule_from_row, rule_params
from meterd.store.codes import ALERT_KIND, ALERT_KIND_OF, SEVERITY, SEVERITY_OF
from meterd.store.db import Database, dedicated, one
from meterd.store.notify import Notifications, listen_on

_RULE_COLUMNS = (
    "id, kind, severity, scope, params, cooldown_s, webhook_url, webhook_secret, disabled, created_at, updated_at,"
    " channels, message_template"
)
ALERT_COLUMNS = """id, tenant_id, rule_id, kind, severity, subject, provider, model, limit_id, metric, observed,
                   threshold, window_start, window_end, message, created_at"""


__all__ = ["AlertStore", "StoredRule", "alert_from_row", "rule_from_row", "rule_params"]


def alert_from_row(r: dict) -> Alert:
    return Alert(
        id=r["id"],
        tenant_id=r["tenant_id"],
        rule_id=r["rule_id"],
        kind=ALERT_KIND_OF[r["kind"]],
        severity=SEVERITY_OF[r["severity"]],
        subject=r["subject"],
        provider=r["provider"],
        model=r["model"],
        limit_id=r["limit_id"],
        metric=r["metric"],
        observed=r["observed"],
        threshold=r["threshold"],
        window_start=r["window_start"],
        window_end=r["window_end"],
        message=r["message"],
        created_at=r["created_at"],
    )


def _scope_sql(rule: AlertRule, args: list, *, labels: bool) -> str:
    """WHERE conditions for a rule's scope on a table with subject/provider/model/operation columns."""
    s = rule.scope
    conds = []
    if s.subject:
        conds.append("subject = %s")
        args.append(s.subject)
    if s.subject_prefix:
        conds.append("starts_with(subject, %s)")
        args.append(s.subject_prefix)
    if s.provider:
        conds.append("lower(provider) = lower(%s)")
        args.append(s.provider)
    if s.model:
        conds.append("lower(model) = lower(%s)")
        args.append(s.model)
    if s.operation:
        conds.append("operation = %s")
        args.append(s.operation)
    if labels and s.labels:
        conds.append("labels @> %s")
        args.append(Jsonb(dict(s.labels)))
    return "".join(" AND " + c for c in conds)


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- rules ------------------------------------------------------------------------------------

    async def set_rule(self, tenant_id: str, rule: AlertRule, keep_webhook_target: str = "") -> tuple[StoredRule, bool]:
        """Insert or replace a rule; with keep_webhook_target (a listed rule sent back) the stored
        webhook is kept, read under the row lock so a concurrent replacement is not undone."""
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
            if keep_webhook_target:
                cur = await conn.execute(
                    f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = %s AND id = %s FOR UPDATE",
                    (tenant_id, rule.id),
                )
                row = await cur.fetchone()
                rule = keep_webhook(rule, keep_webhook_target, rule_from_row(row) if row else None)
            cur = await conn.execute(
                f"""INSERT INTO alert_rules AS r (tenant_id, id, kind, severity, scope, params, cooldown_s, webhook_url,
                                                  webhook_secret, disabled, channels, message_template)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (tenant_id, id) DO UPDATE SET
                        kind = excluded.kind, severity = excluded.severity, scope = excluded.scope,
                        params = excluded.params, cooldown_s = excluded.cooldown_s, webhook_url = excluded.webhook_url,
                        webhook_secret = excluded.webhook_secret, disabled = excluded.disabled,
                        channels = excluded.channels, message_template = excluded.message_template, updated_at = now()
                    RETURNING {_RULE_COLUMNS}, (xmax = 0) AS created""",
                (
                    tenant_id, rule.id, ALERT_KIND[rule.kind], SEVERITY[rule.severity], Jsonb(rule.scope.to_json()),
                    Jsonb(rule_params(rule)), rule.cooldown_s, rule.webhook_url, rule.webhook_secret, rule.disabled,
                    Jsonb([c.to_json() for c in rule.channels]), rule.message_template,
                ),
            )  # fmt: skip
            row = await one(cur)
        return StoredRule(rule_from_row(row), row["created_at"], row["updated_at"]), row["created"]

    async def list_rules(self, tenant_id: str) -> list[StoredRule]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = %s ORDER BY id", (tenant_id,)
            )
            return [StoredRule(rule_from_row(r), r["created_at"], r["updated_at"]) for r in await cur.fetchall()]

    async def enabled_rules(self, kinds: frozenset[AlertKind]) -> list[TenantRule]:
        """Every tenant's enabled rules of these kinds (for the evaluator), by tenant and id."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT tenant_id, {_RULE_COLUMNS} FROM alert_rules
                     WHERE NOT disabled AND kind = ANY(%s) ORDER BY tenant_id, id""",
                ([ALERT_KIND[k] for k in kinds],),
            )
            return [TenantRule(r["tenant_id"], rule_from_row(r)) for r in await cur.fetchall()]

    async def alert_exists(self, tenant_id: str, dedup_key: str) -> bool:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM alerts WHERE tenant_id = %s AND dedup_key = %s", (tenant_id, dedup_key)
            )
            return await cur.fetchone() is not None

    async def delete_rule(self, tenant_id: str, rule_id: str) -> None:
        async with self.db.connection() as conn:
            cur = await conn.execute("DELETE FROM alert_rules WHERE tenant_id = %s AND id = %s", (tenant_id, rule_id))
        if cur.rowcount == 0:
            raise NotFound(f"alert rule {rule_id!r} does not exist in this tenant")

    # ---- alerts -----------------------------------------------------------------------------------

    async def replay(self, f: AlertFilter, after_id: int, limit: int = 500) -> list[Alert]:
        """A tenant's stored alerts with id > after_id that pass the filter, oldest first."""
        args: list = [f.tenant_id, after_id]
        where = ""
        if f.min_severity is not None:
            where += " AND severity = ANY(%s)"
            args.append([SEVERITY[s] for s in Severity if s.rank >= f.min_severity.rank])
        if f.kinds:
            where += " AND kind = ANY(%s)"
            args.append([ALERT_KIND[k] for k in f.kinds])
        if f.subject_prefix:
            where += " AND starts_with(subject, %s)"
            args.append(f.subject_prefix)
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = %s AND id > %s{where} ORDER BY id LIMIT {int(limit)}",
                args,
            )
            return [alert_from_row(r) for r in await cur.fetchall()]

    async def raise_candidates(self, tenant_id: str, candidates: list[Candidate], at: dt.datetime | None) -> list[int]:
        """Raise the evaluator's alerts (dedup and cooldown in meter_raise_alert); the new ids."""
        ids = []
        async with self.db.transaction() as conn:
            for c in sorted(candidates, key=lambda c: (c.rule.id, c.cooldown_key, c.dedup_key)):
                cur = await conn.execute(
                    "SELECT meter_raise_alert(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '', %s, %s, %s, %s, %s, %s, %s) AS id",
                    (
                        tenant_id, c.rule.id, ALERT_KIND[c.rule.kind], SEVERITY[c.rule.severity], c.rule.cooldown_s,
                        c.cooldown_key, c.dedup_key, c.subject, c.provider, c.model, c.metric, c.observed,
                        c.threshold, c.window_start, c.window_end, c.message, at,
                    ),
                )  # fmt: skip
                row = await one(cur)
                if row["id"] is not None:
                    ids.append(row["id"])
        return ids

    # ---- the evaluator's reads -------------------------------------------------------------------

    async def rollup_groups(
        self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime
    ) -> list[GroupFigures]:
        """Per (provider, model) sums of the hourly rollups in [start, end) within the rule's scope."""
        args: list = [tenant_id, start, end]
        scope = _scope_sql(rule, args, labels=False)
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""WITH h AS (
                        SELECT provider, model, calls, errors, cost_nanos, unpriced_calls, latency_hist
                          FROM usage_hourly WHERE tenant_id = %s AND hour >= %s AND hour < %s{scope}
                    ), sums AS (
                        SELECT provider, model, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors,
                               sum(cost_nanos)::bigint AS cost_nanos, sum(unpriced_calls)::bigint AS unpriced_calls
                          FROM h GROUP BY provider, model
                    ), buckets AS (
                        SELECT provider, model, jsonb_object_agg(bucket, n) AS latency_hist
                          FROM (SELECT provider, model, e.k AS bucket, sum(e.v::bigint) AS n
                                  FROM h, jsonb_each_text(h.latency_hist) AS e(k, v)
                                 GROUP BY provider, model, e.k) per_bucket
                         GROUP BY provider, model
                    )
                    SELECT s.*, b.latency_hist FROM sums s LEFT JOIN buckets b USING (provider, model)
                     ORDER BY provider, model""",
                args,
            )
            return [
                GroupFigures(r["provider"], r["model"], r["calls"], r["errors"], r["cost_nanos"], r["unpriced_calls"],
                             histogram.from_sparse(r["latency_hist"] or {}))
                for r in await cur.fetchall()
            ]  # fmt: skip

    async def denials(self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime) -> int:
        args: list = [tenant_id, start, end]
        scope = _scope_sql(rule, args, labels=False)
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT coalesce(sum(denials), 0)::bigint AS n FROM quota_denials
                     WHERE tenant_id = %s AND minute >= %s AND minute < %s{scope}""",
                args,
            )
            return (await one(cur))["n"]

    async def expired_reservations(self, tenant_id: str, rule: AlertRule, start: dt.datetime, end: dt.datetime) -> int:
        args: list = [tenant_id, start, end]
        scope = _scope_sql(rule, args, labels=True)
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT count(*) AS n FROM reservations
                     WHERE tenant_id = %s AND state = 'expired' AND ended_at >= %s AND ended_at < %s{scope}""",
                args,
            )
            return (await one(cur))["n"]

    async def add_denials(self, rows: dict[DenialKey, int]) -> None:
        """Add per-minute denial counts (keys in sorted order, so concurrent flushers never deadlock)."""
        keys = sorted(rows)
        columns = [
            [getattr(k, f) for k in keys] for f in ("tenant_id", "minute", "subject", "provider", "model", "operation")
        ]
        async with self.db.connection() as conn:
            await conn.execute(
                """INSERT INTO quota_denials AS d (tenant_id, minute, subject, provider, model, operation, denials)
                   SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[],
                                        %s::bigint[]) ORDER BY 1, 2, 3, 4, 5, 6
                   ON CONFLICT (tenant_id, minute, subject, provider, model, operation)
                   DO UPDATE SET denials = d.denials + excluded.denials""",
                (*columns, [rows[k] for k in keys]),
            )

    # ---- webhooks ---------------------------------------------------------------------------------

    async def claim_webhooks(self, lease: dt.timedelta, limit: int = 20) -> list[WebhookDue]:
        """Due deliveries, leased to this replica (next_attempt_at moves past the lease), with their
        alert and the rule's URL and secret."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""WITH due AS (
                        SELECT tenant_id, alert_id FROM alert_webhooks
                         WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                         ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED
                    ), leased AS (
                        UPDATE alert_webhooks w SET attempts = w.attempts + 1, next_attempt_at = now() + %s
                          FROM due WHERE (w.tenant_id, w.alert_id) = (due.tenant_id, due.alert_id)
                        RETURNING w.tenant_id, w.alert_id, w.rule_id, w.attempts
                    )
                    SELECT l.attempts, r.webhook_url, r.webhook_secret, {", ".join("a." + c.strip() for c in ALERT_COLUMNS.split(","))}
                      FROM leased l JOIN alerts a ON a.id = l.alert_id
                      LEFT JOIN alert_rules r ON (r.tenant_id, r.id) = (l.tenant_id, l.rule_id)""",
                (limit, lease),
            )
            rows = await cur.fetchall()
        return [
            WebhookDue(alert_from_row(r), r["attempts"], r["webhook_url"] or "", r["webhook_secret"] or "")
            for r in rows
        ]

    async def webhook_done(
        self, tenant_id: str, alert_id: int, *, ok: bool, error: str, retry_in: dt.timedelta | None
    ) -> None:
        async with self.db.connection() as conn:
            if ok:
                await conn.execute(
                    "UPDATE alert_webhooks SET delivered_at = now(), last_error = '' WHERE tenant_id = %s AND alert_id = %s",
                    (tenant_id, alert_id),
                )
            elif retry_in is None:
                await conn.execute(
                    "UPDATE alert_webhooks SET failed_at = now(), last_error = %s WHERE tenant_id = %s AND alert_id = %s",
                    (error[:1000], tenant_id, alert_id),
                )
            else:
                await conn.execute(
                    """UPDATE alert_webhooks SET next_attempt_at = now() + %s, last_error = %s
                        WHERE tenant_id = %s AND alert_id = %s""",
                    (retry_in, error[:1000], tenant_id, alert_id),
                )

    async def webhook_states(self, tenant_id: str) -> list[dict]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT alert_id, attempts, delivered_at, failed_at, last_error FROM alert_webhooks WHERE tenant_id = %s ORDER BY alert_id",
                (tenant_id,),
            )
            return await cur.fetchall()


# ---- the stream hub's feed (its own connection; the evaluator's leadership is store.notify.session) --

ALERTS_CHANNEL = "meter_alerts"  # notified by meter_raise_alert with the new id


class AlertFeed:
    """One connection of its own that both listens on the alerts channel and reads the new rows."""

    def __init__(self, conn: psycopg.AsyncConnection[DictRow], notifications: Notifications) -> None:
        self._conn = conn
        self.notifications = notifications

    async def start(self) -> tuple[int, int]:
        """(highest alert id visible now, this snapshot's xmax)."""
        cur = await self._conn.execute(
            "SELECT coalesce(max(id), 0) AS m, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax FROM alerts"
        )
        row = await cur.fetchone()
        assert row is not None  # an aggregate always returns its row
        return row["m"], row["xmax"]

    async def snapshot_xmin(self) -> int:
        """The oldest transaction id still running (every older transaction has ended)."""
        cur = await self._conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin")
        row = await cur.fetchone()
        assert row is not None
        return row["xmin"]

    async def read(self, low: int, delivered: set[int], limit: int) -> tuple[int, int, list[Alert]]:
        """(xmin, xmax, alerts): the rows with id > low not in `delivered`, oldest first, and the bounds
        of the very snapshot they were read in (one statement, one snapshot)."""
        cur = await self._conn.execute(
            f"""SELECT pg_snapshot_xmin(s)::text::bigint AS snap_xmin, pg_snapshot_xmax(s)::text::bigint AS snap_xmax, a.*
                  FROM pg_current_snapshot() s
                  LEFT JOIN LATERAL (SELECT {ALERT_COLUMNS} FROM alerts WHERE id > %s AND id <> ALL(%s)
                                      ORDER BY id LIMIT {int(limit)}) a ON true""",
            (low, sorted(delivered)),
        )
        rows = await cur.fetchall()
        return rows[0]["snap_xmin"], rows[0]["snap_xmax"], [alert_from_row(r) for r in rows if r["id"] is not None]


@contextlib.asynccontextmanager
async def alert_feed(conninfo: str) -> AsyncIterator[AlertFeed]:
    """The feed on a new connection, closed when the block ends; errors leave it mapped (Unavailable...)."""
    async with dedicated(conninfo, row_factory=dict_row) as conn:
        yield AlertFeed(conn, await listen_on(conn, ALERTS_CHANNEL))
