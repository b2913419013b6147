"""Alert channels end to end: a rule set through MeterAdmin, an alert raised by a recorded call,
delivered to local fake receivers of every format (Slack, Teams, Discord, PagerDuty, the signed
webhook, email over SMTP with STARTTLS and AUTH), retried, outcomes recorded, secrets never listed."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2_grpc
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.receivers import http_receiver, smtp_receiver
from meter_testing.requests import field_violations, record
from meter_testing.waiting import eventually

CONSOLE = "https://console.example/meter"


@pytest.fixture(scope="module")
async def channels_env(postgres):
    url = postgres.create_database()
    try:
        async with running_server(
            url, alert_poll_interval=0.2, webhook_retry_base=0.1, webhook_max_attempts=3, alert_console_url=CONSOLE
        ) as server:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                server.test_database_url = url
                yield server, meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
    finally:
        postgres.drop_database(url)


def call_cost_rule(id: str, channels: list[admin_pb2.AlertChannel], **fields) -> admin_pb2.SetAlertRuleRequest:
    fields.setdefault("amount_nanos", 10_000_000)
    return admin_pb2.SetAlertRuleRequest(
        rule=admin_pb2.AlertRule(
            id=id, kind=common_pb2.ALERT_KIND_CALL_COST, severity=common_pb2.SEVERITY_CRITICAL, channels=channels,
            **fields,
        )
    )  # fmt: skip


async def deliveries(server, tenant_id: str, n: int, *, within: float = 20.0) -> list[dict]:
    """Polls until n delivery rows of the tenant are settled (delivered or failed)."""

    async def settled() -> list[dict] | None:
        rows = await server.channels.store.states(tenant_id)
        return rows if len(rows) >= n and all(r["delivered_at"] or r["failed_at"] for r in rows) else None

    return await eventually(settled, within=within, what=f"{n} deliveries of {tenant_id} settled")


async def test_an_alert_reaches_every_channel_in_its_native_format(channels_env):
    server, meter, admin = channels_env
    tenant = await create_tenant(server)
    async with (
        http_receiver({"/slack/T1/B2/tok": [500]}, ok={"/discord/1/tok": 204, "/pd": 202}) as http,
        smtp_receiver("meter", "smtp-pass") as smtp,
    ):
        server.channels.ssl_context = smtp.client_context
        channels = [
            admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_SLACK, url=f"{http.base}/slack/T1/B2/tok"),
            admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_TEAMS, url=f"{http.base}/teams/wf?sig=tok"),
            admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_DISCORD, url=f"{http.base}/discord/1/tok"),
            admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_PAGERDUTY, url=f"{http.base}/pd", secret="R0UTING"),
            admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_WEBHOOK, url=f"{http.base}/hook", secret="hooksecret"),
            admin_pb2.AlertChannel(
                kind=admin_pb2.CHANNEL_KIND_EMAIL, email_to=["ops@example.com", "cto@example.com"],
                email_from="meter@example.com", smtp_host=smtp.host, smtp_port=smtp.port,
                smtp_tls=admin_pb2.SMTP_TLS_STARTTLS, smtp_username="meter", secret="smtp-pass",
            ),
        ]  # fmt: skip
        await admin.SetAlertRule(call_cost_rule("big-call", channels), metadata=tenant.auth())
        call_id = f"ch-{uuid.uuid4().hex[:8]}"
        await meter.RecordCall(record(call_id=call_id, cost_nanos=100_000_000), metadata=tenant.auth("record"))
        rows = await deliveries(server, tenant.id, 6)

    assert [(r["channel"], r["kind"], bool(r["delivered_at"])) for r in rows] == [
        (0, "slack", True), (1, "teams", True), (2, "discord", True), (3, "pagerduty", True), (4, "webhook", True),
        (5, "email", True),
    ]  # fmt: skip
    # Slack answered 500 first: retried with backoff, the attempts recorded; the target has no token.
    assert rows[0]["attempts"] == 2 and rows[0]["target"] == "http://127.0.0.1:{}/…".format(http.base.rsplit(":", 1)[1])
    assert [r["attempts"] for r in rows[1:]] == [1] * 5
    assert rows[5]["target"] == "ops@example.com, cto@example.com"
    expected = f"call {call_id} of team:search/user:42 (openai/gpt-4.1) cost $0.10, over $0.01"

    slack = http.at("/slack/T1/B2/tok")[-1].json()
    assert expected in slack["text"] and [b["type"] for b in slack["blocks"]] == [
        "header",
        "section",
        "section",
        "actions",
    ]
    assert slack["blocks"][1]["text"] == {"type": "mrkdwn", "text": f"[CRITICAL] {expected}\n{CONSOLE}"}
    assert "*Subject:* team:search/user:42" in slack["blocks"][2]["text"]["text"]
    assert slack["blocks"][3]["elements"][0]["url"] == CONSOLE

    teams = http.at("/teams/wf?sig=tok")[0].json()
    assert teams["type"] == "message"
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["actions"][0]["url"] == CONSOLE
    facts = {f["title"]: f["value"] for f in card["content"]["body"][2]["facts"]}
    assert facts["Observed"] == "$0.10" and facts["Threshold"] == "$0.01" and facts["Model"] == "openai/gpt-4.1"

    discord = http.at("/discord/1/tok")[0].json()
    embed = discord["embeds"][0]
    assert embed["color"] == 0xD32F2F and embed["url"] == CONSOLE and expected in embed["description"]
    assert discord["allowed_mentions"] == {"parse": []}

    pd = http.at("/pd")[0].json()
    alert_id = rows[0]["alert_id"]
    assert pd["routing_key"] == "R0UTING" and pd["event_action"] == "trigger"
    assert pd["dedup_key"] == f"meter/{tenant.id}/{alert_id}"
    assert pd["payload"]["severity"] == "critical" and pd["payload"]["source"] == "meter"
    assert expected in pd["payload"]["summary"] and pd["links"][0]["href"] == CONSOLE

    hook = http.at("/hook")[0]
    mac = hmac.new(b"hooksecret", hook.headers["x-meter-timestamp"].encode() + b"." + hook.body, hashlib.sha256)
    assert hook.headers["x-meter-signature"] == "sha256=" + mac.hexdigest()
    assert hook.json()["id"] == alert_id and hook.json()["text"] == f"[CRITICAL] {expected}\n{CONSOLE}"

    [(mail_from, rcpt, msg)] = smtp.messages
    assert smtp.logins == ["meter"] and mail_from == "meter@example.com"
    assert rcpt == ["ops@example.com", "cto@example.com"]
    assert msg["Subject"] == "Meter CRITICAL: call cost for team:search/user:42 (rule big-call)"
    assert msg["X-Meter-Alert-Id"] == str(alert_id) and expected in msg.get_content()


async def test_the_template_is_the_rules_and_secrets_are_never_listed(channels_env):
    server, meter, admin = channels_env
    tenant = await create_tenant(server)
    async with http_receiver() as http:
        slack = admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_SLACK, url=f"{http.base}/services/T/B/xoxsecret")
        pd = admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_PAGERDUTY, secret="routingkey", url=f"{http.base}/pd")
        template = "${observed} by ${subject} on ${model} (limit $threshold) ${console_url} $$5"
        reply = await admin.SetAlertRule(
            call_cost_rule("tpl", [slack, pd], message_template=template, amount_nanos=100_000), metadata=tenant.auth()
        )
        listed = await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())
        for shown in (reply.rule.channels, listed.rules[0].channels):
            assert [(c.url, c.secret, c.secret_set) for c in shown] == [("", "", False), ("", "", True)]
            assert shown[0].target.endswith("/…") and "xoxsecret" not in str(shown)
        assert listed.rules[0].message_template == template
        await meter.RecordCall(record(cost_nanos=250_000), metadata=tenant.auth("record"))
        await deliveries(server, tenant.id, 2)
    text = http.at("/services/T/B/xoxsecret")[0].json()["blocks"][1]["text"]["text"]
    assert text == f"$0.00025 by team:search/user:42 on gpt-4.1 (limit $0.0001) {CONSOLE} $5"


async def test_a_receiver_that_keeps_failing_is_given_up_with_its_error_recorded(channels_env):
    server, meter, admin = channels_env
    tenant = await create_tenant(server)
    async with http_receiver({"/down": [503] * 10}) as http:
        down = admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_DISCORD, url=f"{http.base}/down")
        await admin.SetAlertRule(call_cost_rule("flaky", [down]), metadata=tenant.auth())
        await meter.RecordCall(record(cost_nanos=50_000_000), metadata=tenant.auth("record"))
        [row] = await deliveries(server, tenant.id, 1)
    assert row["failed_at"] and not row["delivered_at"] and row["attempts"] == 3
    assert row["last_error"] == "HTTP 503: try later" and len(http.at("/down")) == 3


async def test_channel_fields_are_validated_with_one_violation_per_problem(channels_env):
    server, _, admin = channels_env
    tenant = await create_tenant(server)
    bad = [
        admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_SLACK, url="ftp://x"),
        admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_PAGERDUTY),
        admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_EMAIL, email_to=["not-an-address"]),
        admin_pb2.AlertChannel(kind=admin_pb2.CHANNEL_KIND_WEBHOOK, url="https://x.example/h"),
        admin_pb2.AlertChannel(),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.SetAlertRule(call_cost_rule("bad", bad, message_template="${nope} $"), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {
        "rule.channels[0].url", "rule.channels[1].secret", "rule.channels[2].email_to", "rule.channels[2].email_from",
        "rule.channels[2].smtp_host", "rule.channels[3].secret", "rule.channels[4].kind", "rule.message_template",
    }  # fmt: skip


async def test_cli_sets_channels_and_lists_them_without_secrets(channels_env):
    from e2e.test_alerts import meter_cli

    server, _, admin = channels_env
    tenant = await create_tenant(server)
    url = server.test_database_url
    slack = '{"kind":"slack","url":"https://hooks.slack.com/services/T/B/xoxb-secret"}'
    code, out, err = await meter_cli(
        "alerts", "rules", "set", "--tenant", tenant.id, "--id", "cli-ch", "--kind", "call_cost", "--amount-usd", "1",
        "--channel", slack, "--channel", '{"kind":"pagerduty","secret":"rk-secret"}', "--template", "${subject}!",
        "--database-url", url,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = await meter_cli("alerts", "rules", "list", "--tenant", tenant.id, "--database-url", url)
    assert "slack:https://hooks.slack.com/…,pagerduty:https://events.pagerduty.com/…" in out and "secret" not in out
    listed = await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())
    assert listed.rules[0].message_template == "${subject}!" and len(listed.rules[0].channels) == 2
    code, _, err = await meter_cli("alerts", "rules", "set", "--tenant", tenant.id, "--id", "x", "--kind", "call_cost",
                                   "--amount-usd", "1", "--channel", "slack", "--database-url", url)  # fmt: skip
    assert code != 0 and "--channel wants a JSON object" in err


async def test_cli_defaults_creates_starter_rules_once(channels_env):
    from e2e.test_alerts import meter_cli

    server, _, admin = channels_env
    tenant = await create_tenant(server)
    args = ("alerts", "defaults", "--tenant", tenant.id, "--daily-cost-usd", "25", "--database-url",
            server.test_database_url)  # fmt: skip
    code, out, err = await meter_cli(*args)
    assert code == 0, err
    assert [line.split("\t")[:2] for line in out.splitlines()] == [
        ["created", "default-limits"], ["created", "default-error-rate"], ["created", "default-daily-cost"],
    ]  # fmt: skip
    code, out, _ = await meter_cli(*args)
    assert [line.split("\t")[0] for line in out.splitlines()] == ["kept"] * 3
    listed = await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())
    daily = next(r for r in listed.rules if r.id == "default-daily-cost")
    assert daily.amount_nanos == 25_000_000_000 and daily.window.kind == common_pb2.WINDOW_KIND_DAY
