"""Channel deliveries (alert_deliveries, migrations/0010_alert_channels.sql): leasing due rows and
recording each attempt's outcome."""

from __future__ import annotations

import datetime as dt

from meterd.domain.alert_records import DeliveryDue
from meterd.domain.channels import Channel
from meterd.store.alerts import ALERT_COLUMNS, alert_from_row
from meterd.store.db import Database


class DeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, lease: dt.timedelta, limit: int = 20) -> list[DeliveryDue]:
        """Due deliveries leased to this replica (next_attempt_at moves past the lease, so a replica
        that dies mid-send leaves them to another after the lease), with their alert and the rule's
        channels and template (a rule deleted meanwhile gives NULLs)."""
        alert_cols = ", ".join("a." + c.strip() for c in ALERT_COLUMNS.split(","))
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""WITH due AS (
                        SELECT tenant_id, alert_id, channel FROM alert_deliveries
                         WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                         ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED
                    ), leased AS (
                        UPDATE alert_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + %s
                          FROM due WHERE (d.tenant_id, d.alert_id, d.channel) = (due.tenant_id, due.alert_id, due.channel)
                        RETURNING d.tenant_id, d.alert_id, d.channel, d.kind AS channel_kind, d.rule_id, d.attempts
                    )
                    SELECT l.channel, l.channel_kind, l.attempts, r.channels, r.message_template, {alert_cols}
                      FROM leased l JOIN alerts a ON (a.tenant_id, a.id) = (l.tenant_id, l.alert_id)
                      LEFT JOIN alert_rules r ON (r.tenant_id, r.id) = (l.tenant_id, l.rule_id)""",
                (limit, lease),
            )
            rows = await cur.fetchall()
        return [
            DeliveryDue(alert_from_row(r), r["channel"], r["channel_kind"], r["attempts"],
                        tuple(Channel.from_json(c) for c in r["channels"] or ()), r["message_template"] or "")
            for r in rows
        ]  # fmt: skip

    async def done(
        self,
        tenant_id: str,
        alert_id: int,
        channel: int,
        *,
        target: str,
        ok: bool,
        error: str,
        retry_in: dt.timedelta | None,
    ) -> None:
        key = (tenant_id, alert_id, channel)
        async with self.db.connection() as conn:
            if ok:
                await conn.execute(
                    """UPDATE alert_deliveries SET delivered_at = now(), last_error = '', target = %s
                        WHERE (tenant_id, alert_id, channel) = (%s, %s, %s)""",
                    (target, *key),
                )
            elif retry_in is None:
                await conn.execute(
                    """UPDATE alert_deliveries SET failed_at = now(), last_error = %s, target = %s
                        WHERE (tenant_id, alert_id, channel) = (%s, %s, %s)""",
                    (error[:1000], target, *key),
                )
            else:
                await conn.execute(
                    """UPDATE alert_deliveries SET next_attempt_at = now() + %s, last_error = %s, target = %s
                        WHERE (tenant_id, alert_id, channel) = (%s, %s, %s)""",
                    (retry_in, error[:1000], target, *key),
                )

    async def states(self, tenant_id: str, alert_id: int | None = None) -> list[dict]:
        args: list = [tenant_id]
        where = ""
        if alert_id is not None:
            where = " AND alert_id = %s"
            args.append(alert_id)
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT alert_id, channel, kind, target, attempts, delivered_at, failed_at, last_error
                      FROM alert_deliveries WHERE tenant_id = %s{where} ORDER BY alert_id, channel""",
                args,
            )
            return await cur.fetchall()
