"""Alerts end to end: rules through MeterAdmin, alerts raised by records, checks and the
evaluator, delivered by StreamAlerts (replay + live, filters, heartbeats, slow readers)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
import psycopg
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.alerts import AlertReader
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, field_violations, limit, record
from meter_testing.waiting import eventually


@pytest.fixture(scope="module")
async def alerting(postgres):
    """(server, meter stub, admin stub, database url): a server with fast alert loops, on a database
    of its own."""
    url = postgres.create_database()
    try:
        async with running_server(
            url,
            alert_eval_interval=0.2,
            alert_poll_interval=0.2,
            alert_heartbeat=0.2,  # streams say "caught up" (heartbeat resume_id) fast: no sleeps needed
            alert_stream_buffer=50,
            sweep_interval=0.2,
            webhook_retry_base=0.1,
        ) as server:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield server, meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel), url
    finally:
        postgres.drop_database(url)


@pytest.fixture
async def env(alerting):
    server, meter, admin, url = alerting
    tenant = await create_tenant(server)
    readers: list[AlertReader] = []

    def stream(**request) -> AlertReader:
        reader = AlertReader(meter, tenant.auth("read"), **request)
        readers.append(reader)
        return reader

    yield server, meter, admin, tenant, stream, url
    for r in readers:
        await r.close()
    # The next test starts with no stream of this one still subscribed.
    await eventually(lambda: server.alert_hub.subscribers == 0, what="streams unsubscribed")


def rule(id: str, kind: str, severity: str = "WARNING", **fields) -> admin_pb2.AlertRule:
    window = fields.pop("window", None)
    scope = fields.pop("scope", {})
    return admin_pb2.AlertRule(
        id=id,
        kind=common_pb2.AlertKind.Value(f"ALERT_KIND_{kind}"),
        severity=common_pb2.Severity.Value(f"SEVERITY_{severity}"),
        window=common_pb2.Window(kind=common_pb2.WindowKind.Value(f"WINDOW_KIND_{window}")) if window else None,
        scope=common_pb2.Selector(**scope),
        **fields,
    )


async def set_rule(admin, tenant, r: admin_pb2.AlertRule):
    return await admin.SetAlertRule(admin_pb2.SetAlertRuleRequest(rule=r), metadata=tenant.auth())


async def newest_alert_id(url: str) -> int:
    """The newest committed alert id: a stream whose heartbeat resume_id reaches it has sent all."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return (await (await conn.execute("SELECT coalesce(max(id), 0) FROM alerts")).fetchone())[0]


async def stored_alerts(url: str, tenant_id: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT id, rule_id, kind, severity, threshold FROM alerts WHERE tenant_id = %s ORDER BY id", (tenant_id,)
        )
        return await cur.fetchall()


# ---- rules --------------------------------------------------------------------------------------


async def test_rules_set_list_delete_and_the_secret_stays_secret(env):
    _, _, admin, tenant, _, _ = env
    created = await set_rule(
        admin, tenant,
        rule("big-call", "CALL_COST", "CRITICAL", amount_nanos=5_000_000_000, webhook_url="http://127.0.0.1:9/hook",
             webhook_secret="s3cret", scope={"subject_prefix": "team:"}, cooldown={"seconds": 600}),
    )  # fmt: skip
    assert created.created and created.rule.webhook_secret == "" and created.rule.cooldown.seconds == 600
    replaced = await set_rule(admin, tenant, rule("big-call", "CALL_COST", amount_nanos=1))
    assert not replaced.created and replaced.rule.severity == common_pb2.SEVERITY_WARNING
    await set_rule(admin, tenant, rule("daily", "WINDOW_COST", amount_nanos=100_000_000_000, window="DAY"))
    listed = await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())
    assert [(r.id, r.window.kind) for r in listed.rules] == [("big-call", 0), ("daily", common_pb2.WINDOW_KIND_DAY)]
    other = await create_tenant(env[0])
    assert not (await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=other.auth())).rules
    await admin.DeleteAlertRule(admin_pb2.DeleteAlertRuleRequest(id="daily"), metadata=tenant.auth())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.DeleteAlertRule(admin_pb2.DeleteAlertRuleRequest(id="daily"), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth("read"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_listed_rules_mask_the_webhook_url_and_sending_one_back_keeps_the_stored_webhook(env):
    server, _, admin, tenant, _, _ = env
    hook = "https://hooks.example.com/services/T000/B000/tok3n?sig=abc"
    out = await set_rule(admin, tenant, rule("hooked", "CALL_COST", amount_nanos=7, webhook_url=hook,
                                             webhook_secret="s3cret"))  # fmt: skip
    assert out.rule.webhook_url == "" and out.rule.webhook_target == "https://hooks.example.com/…"

    async def stored() -> tuple[str, str, int]:
        (s,) = [s for s in await server.alert_store.list_rules(tenant.id) if s.rule.id == "hooked"]
        return s.rule.webhook_url, s.rule.webhook_secret, s.rule.amount_nanos

    (listed,) = (await admin.ListAlertRules(admin_pb2.ListAlertRulesRequest(), metadata=tenant.auth())).rules
    assert "tok3n" not in str(listed) and "s3cret" not in str(listed)
    assert listed.webhook_url == "" and listed.webhook_secret == "" and listed.webhook_secret_set
    # Sent back unchanged, then with one field edited: the stored URL and secret stay as they were.
    await set_rule(admin, tenant, listed)
    assert await stored() == (hook, "s3cret", 7)
    edited = admin_pb2.AlertRule()
    edited.CopyFrom(listed)
    edited.amount_nanos = 9
    await set_rule(admin, tenant, edited)
    assert await stored() == (hook, "s3cret", 9)
    edited.webhook_secret = "rotated"  # a new secret with the kept URL
    await set_rule(admin, tenant, edited)
    assert await stored() == (hook, "rotated", 9)
    # A target that does not name the stored webhook is refused, and nothing changes.
    edited.webhook_target = "https://elsewhere.example/…"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_rule(admin, tenant, edited)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rule.webhook_target" in field_violations(err.value)
    assert await stored() == (hook, "rotated", 9)
    # A webhook_url sent wins over the target; leaving both empty removes the webhook.
    edited.webhook_url, edited.webhook_secret = "http://127.0.0.1:9/new", "n3w"
    await set_rule(admin, tenant, edited)
    assert await stored() == ("http://127.0.0.1:9/new", "n3w", 9)
    edited.webhook_url, edited.webhook_secret, edited.webhook_target = "", "", ""
    out = await set_rule(admin, tenant, edited)
    assert await stored() == ("", "", 9) and out.rule.webhook_target == "" and not out.rule.webhook_secret_set
    # Keeping a webhook the rule never had is refused too.
    edited.webhook_target = "http://127.0.0.1:9/…"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_rule(admin, tenant, edited)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("bad", "fields"),
    [
        (admin_pb2.AlertRule(), {"rule.id", "rule.kind", "rule.severity"}),
        (rule("x", "WINDOW_COST"), {"rule.amount_nanos", "rule.window"}),
        (rule("x", "ERROR_RATE", window="MINUTE", error_rate=1.0), {"rule.window", "rule.error_rate"}),
        # Out of the field's range: the bounds layer answers before the rule's own checks run.
        (rule("x", "ERROR_RATE", window="MINUTE", error_rate=1.5), {"rule.error_rate"}),
        (rule("x", "LATENCY_P95", window="HOUR", scope={"labels": {"a": "b"}}), {"rule.latency", "rule.scope.labels"}),
        (rule("x", "LIMIT_THRESHOLD", thresholds_percent=[0], scope={"model": "m"}), {"rule.thresholds_percent[0]"}),
        (rule("x", "LIMIT_THRESHOLD", thresholds_percent=[80], scope={"model": "m"}), {"rule.scope.model"}),
        (rule("x", "CALL_COST", amount_nanos=1, webhook_url="ftp://x", count=3),
         {"rule.webhook_url", "rule.webhook_secret", "rule.count"}),
        (rule("x", "DENIALS", window="HOUR", count=-1, cooldown={"seconds": -1}), {"rule.count", "rule.cooldown"}),
    ],
)  # fmt: skip
async def test_invalid_rules_name_every_bad_field(env, bad, fields):
    _, _, admin, tenant, _, _ = env
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_rule(admin, tenant, bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields <= set(field_violations(err.value)), field_violations(err.value)


# ---- limit thresholds ----------------------------------------------------------------------------


async def test_default_thresholds_fire_once_each_at_80_and_100_percent(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("daily", "REQUESTS", "DAY", 10)), metadata=tenant.auth())
    live = await stream().subscribed()
    for _ in range(7):
        await meter.RecordCall(record(), metadata=tenant.auth("record"))
    assert await stored_alerts(url, tenant.id) == []  # raised in the record's transaction, or never
    await live.caught_up(await newest_alert_id(url))
    assert live.alerts == []
    for _ in range(6):  # 8 → 80%, 10 → 100%, then no more
        await meter.RecordCall(record(), metadata=tenant.auth("record"))
    alerts = await live.wait_alerts(2)
    warning, critical = alerts
    assert (warning.kind, warning.severity, warning.threshold, warning.limit_id, warning.rule_id) == (
        common_pb2.ALERT_KIND_LIMIT_THRESHOLD, common_pb2.SEVERITY_WARNING, 80, "daily", "(default)")  # fmt: skip
    assert warning.observed == 80 and warning.metric == common_pb2.METRIC_REQUESTS
    assert (critical.severity, critical.threshold, critical.observed) == (common_pb2.SEVERITY_CRITICAL, 100, 100)
    assert critical.window_end.ToSeconds() - critical.window_start.ToSeconds() == 86400
    assert "daily" in critical.message and "100%" in critical.message
    await live.caught_up(await newest_alert_id(url))
    assert len(live.alerts) == 2 and len(await stored_alerts(url, tenant.id)) == 2


async def test_a_level_passed_by_lowering_max_is_announced_at_the_next_record(env):
    _, meter, admin, tenant, _, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("shrink", "REQUESTS", "DAY", 100)), metadata=tenant.auth()
    )
    for _ in range(5):
        await meter.RecordCall(record(), metadata=tenant.auth("record"))
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("shrink", "REQUESTS", "DAY", 6)), metadata=tenant.auth())
    assert await stored_alerts(url, tenant.id) == []  # 5 of 6 is 83%, but nothing moved yet
    await meter.RecordCall(record(), metadata=tenant.auth("record"))  # 6 of 6
    assert [(r[3], r[4]) for r in await stored_alerts(url, tenant.id)] == [("warning", 80.0), ("critical", 100.0)]
    await meter.RecordCall(record(), metadata=tenant.auth("record"))  # 7 of 6: nothing new
    assert len(await stored_alerts(url, tenant.id)) == 2


async def test_tenant_rule_replaces_the_defaults_and_per_limit_thresholds_apply(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("a", "REQUESTS", "DAY", 10, alert_thresholds_percent=[50])),
        metadata=tenant.auth(),
    )
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("b", "REQUESTS", "DAY", 100)), metadata=tenant.auth())
    await set_rule(admin, tenant, rule("limit-a", "LIMIT_THRESHOLD", "INFO", limit_id="a"))
    for _ in range(10):
        await meter.RecordCall(record(), metadata=tenant.auth("record"))
    rows = await stored_alerts(url, tenant.id)
    # Only the rule's limit "a", at its own 50% (b is at 10%, and the defaults are off with a rule).
    assert [(r[1], r[3], r[4]) for r in rows] == [("limit-a", "info", 50.0)]


async def test_50_concurrent_records_crossing_80_percent_raise_exactly_one_alert(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("fifty", "REQUESTS", "DAY", 50)), metadata=tenant.auth())
    live = stream(since_id=0)
    await asyncio.gather(*(meter.RecordCall(record(), metadata=tenant.auth("record")) for _ in range(50)))
    alerts = await live.wait_alerts(2)
    await live.caught_up(await newest_alert_id(url))
    assert sorted(a.threshold for a in live.alerts) == [80, 100]
    assert [(r[2], r[4]) for r in await stored_alerts(url, tenant.id)] == [("limit_threshold", 80.0),
                                                                          ("limit_threshold", 100.0)]  # fmt: skip
    assert len({a.id for a in alerts}) == 2


async def test_a_batch_crossing_many_counters_at_once_raises_one_alert_per_counter_and_level(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("per-user", "REQUESTS", "DAY", 2, partition="PER_SUBJECT")),
        metadata=tenant.auth(),
    )
    live = stream(since_id=0, subject_prefix="u")
    # u0..u3: the first record creates each counter at 50%; the batch then takes them to 100% (the
    # update path, several rows in one statement). u4's first-ever record is 2 requests at once:
    # its counter is born at 100%, crossing 80 and 100 in one step (the insert path).
    await meter.RecordCalls(
        meter_pb2.RecordCallsRequest(calls=[record(subject=f"u{i}") for i in range(4)]), metadata=tenant.auth("record")
    )
    calls = [record(subject=f"u{i}") for i in range(4)] + [record(subject="u4", usage={"requests": 2})]
    reply = await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=calls), metadata=tenant.auth("record"))
    assert reply.recorded == 5
    await live.wait_alerts(10)
    await live.caught_up(await newest_alert_id(url))
    got = sorted((a.subject, a.threshold) for a in live.alerts)
    assert got == sorted((f"u{i}", level) for i in range(5) for level in (80.0, 100.0))


async def test_a_shared_limit_of_one_exact_subject_alerts_with_that_subject(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("vip", "REQUESTS", "DAY", 5, selector={"subject": "team:a/vip"})),
        metadata=tenant.auth(),
    )
    await admin.SetLimit(  # shared by many subjects: no subject to name
        admin_pb2.SetLimitRequest(limit=limit("team", "REQUESTS", "DAY", 5, selector={"subject_prefix": "team:a/"})),
        metadata=tenant.auth(),
    )
    selected = stream(since_id=0, subject_prefix="team:a/")
    everything = stream(since_id=0)
    for _ in range(5):
        await meter.RecordCall(record(subject="team:a/vip"), metadata=tenant.auth("record"))
    await everything.wait_alerts(4)
    assert {(a.limit_id, a.subject) for a in everything.alerts} == {("vip", "team:a/vip"), ("team", "")}
    await selected.caught_up(await newest_alert_id(url))
    assert sorted((a.limit_id, a.threshold) for a in selected.alerts) == [("vip", 80), ("vip", 100)]


async def test_a_subject_scoped_threshold_rule_applies_to_a_shared_limit_of_that_subject(env):
    _, meter, admin, tenant, _, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("vip", "REQUESTS", "DAY", 2, selector={"subject": "team:a/vip"})),
        metadata=tenant.auth(),
    )
    await set_rule(admin, tenant, rule("team-a", "LIMIT_THRESHOLD", "INFO", scope={"subject_prefix": "team:a/"},
                                       thresholds_percent=[50]))  # fmt: skip
    await meter.RecordCall(record(subject="team:a/vip"), metadata=tenant.auth("record"))
    assert [(r[1], r[3], r[4]) for r in await stored_alerts(url, tenant.id)] == [("team-a", "info", 50.0)]


async def test_reservations_do_not_count_towards_thresholds_until_settled(env):
    _, meter, admin, tenant, stream, url = env
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("r", "REQUESTS", "DAY", 10)), metadata=tenant.auth())
    held = [await meter.CheckQuota(check(), metadata=tenant.auth("check")) for _ in range(9)]
    assert all(h.allowed for h in held)
    assert await stored_alerts(url, tenant.id) == []
    for h in held[:8]:
        await meter.RecordCall(record(reservation_id=h.reservation_id), metadata=tenant.auth("record"))
    assert [r[4] for r in await stored_alerts(url, tenant.id)] == [80.0]


async def test_shadow_limits_never_alert(env):
    _, meter, admin, tenant, _, url = env
    await admin.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("s", "REQUESTS", "DAY", 1, action="SHADOW")), metadata=tenant.auth()
    )
    await meter.RecordCall(record(), metadata=tenant.auth("record"))
    assert await stored_alerts(url, tenant.id) == []


# ---- call cost and cooldown ------------------------------------------------------------------------


async def test_call_cost_alerts_respect_the_cooldown_per_subject(env):
    _, meter, admin, tenant, stream, url = env
    await set_rule(admin, tenant, rule("pricey", "CALL_COST", amount_nanos=1_000_000_000, cooldown={"seconds": 3600}))
    await set_rule(admin, tenant, rule("pricey-nocool", "CALL_COST", "INFO", amount_nanos=2_000_000_000,
                                       scope={"subject_prefix": "team:"}))  # fmt: skip
    live = stream(since_id=0, min_severity=common_pb2.SEVERITY_WARNING)
    auth = tenant.auth("record")
    await meter.RecordCall(record(cost_nanos=500_000_000), metadata=auth)  # under both
    await meter.RecordCall(record(cost_nanos=3_000_000_000), metadata=auth)  # both rules
    await meter.RecordCall(record(cost_nanos=3_000_000_000), metadata=auth)  # "pricey" cooling down
    await meter.RecordCall(record(cost_nanos=3_000_000_000, subject="other"), metadata=auth)  # another subject
    rows = await stored_alerts(url, tenant.id)
    assert sorted((r[1], r[3]) for r in rows) == [("pricey", "warning"), ("pricey", "warning"),
        ("pricey-nocool", "info"), ("pricey-nocool", "info")]  # fmt: skip
    alerts = await live.wait_alerts(2)
    assert {a.subject for a in alerts} == {"team:search/user:42", "other"}
    assert all(a.rule_id == "pricey" and a.observed == 3e9 and a.threshold == 1e9 for a in alerts)


# ---- delivery -------------------------------------------------------------------------------------


async def raise_alert(conn, tenant_id: str, dedup: str, severity: str = "warning", subject: str = "") -> int:
    cur = await conn.execute(
        """SELECT meter_raise_alert(%s, 'manual', 'call_cost', %s, 0, '', %s, %s, '', '', '', '', 1, 0,
                                    NULL, NULL, 'test alert ' || %s, NULL)""",
        (tenant_id, severity, dedup, subject, dedup),
    )
    return (await cur.fetchone())[0]


async def test_an_alert_committed_after_a_higher_id_still_reaches_every_stream(env):
    _, _, _, tenant, stream, url = env
    live = await stream().subscribed()
    async with (
        await psycopg.AsyncConnection.connect(url) as held,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as other,
    ):
        async with held.transaction():
            seven = await raise_alert(held, tenant.id, "held")  # takes its id, stays uncommitted
            eight = await raise_alert(other, tenant.id, "quick")
            assert seven < eight
            await live.wait_for(lambda r: r.ids == [eight])
            late_joiner = stream(since_id=seven - 1)  # replays 8 now, must get 7 live
            await late_joiner.wait_for(lambda r: r.ids == [eight])
        # committed now
        await live.wait_for(lambda r: r.ids == [eight, seven])
        await late_joiner.wait_for(lambda r: r.ids == [eight, seven])
    resumed = stream(since_id=seven - 1)
    await resumed.wait_for(lambda r: sorted(r.ids) == [seven, eight])
    newest = await newest_alert_id(url)
    for reader in (live, late_joiner, resumed):
        await reader.caught_up(newest)
    assert live.ids == [eight, seven] and late_joiner.ids == [eight, seven] and sorted(resumed.ids) == [seven, eight]


async def test_reconnecting_with_since_id_gets_exactly_the_missed_alerts(env):
    _, _, _, tenant, stream, url = env
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        first = stream(since_id=0)
        ids = [await raise_alert(conn, tenant.id, f"a{i}") for i in range(3)]
        await first.wait_alerts(3)
        await first.close()
        missed = [await raise_alert(conn, tenant.id, f"b{i}") for i in range(4)]
        again = stream(since_id=first.ids[-1])
        await again.wait_alerts(4)
        later = await raise_alert(conn, tenant.id, "c")
        await again.wait_alerts(5)
        await again.caught_up(later)
    assert first.ids == ids and again.ids == [*missed, later]


async def test_filters_and_tenant_isolation(env):
    server, _, _, tenant, stream, url = env
    other = await create_tenant(server)
    critical_only = stream(since_id=0, min_severity=common_pb2.SEVERITY_CRITICAL)
    by_prefix = stream(since_id=0, subject_prefix="team:a/")
    by_kind = stream(since_id=0, kinds=[common_pb2.ALERT_KIND_WINDOW_COST])
    everything = stream(since_id=0)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await raise_alert(conn, other.id, "other-tenant", "critical", "team:a/x")
        crit = await raise_alert(conn, tenant.id, "crit", "critical", "team:b/x")
        team_a = await raise_alert(conn, tenant.id, "info", "info", "team:a/y")
    await everything.wait_alerts(2)
    await critical_only.wait_alerts(1)
    await by_prefix.wait_alerts(1)
    newest = await newest_alert_id(url)
    for reader in (critical_only, by_prefix, by_kind, everything):
        await reader.caught_up(newest)
    assert everything.ids == [crit, team_a] and critical_only.ids == [crit] and by_prefix.ids == [team_a]
    assert by_kind.ids == []


async def test_heartbeats_carry_the_last_id(env):
    _, _, _, tenant, stream, url = env
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        alert_id = await raise_alert(conn, tenant.id, "hb")
    live = stream(since_id=alert_id - 1, heartbeat_interval={"seconds": 1})
    await live.wait_for(lambda r: len(r.heartbeats) >= 1, within=5)
    assert live.ids == [alert_id] and live.heartbeats[0].last_id == alert_id
    assert live.heartbeats[0].resume_id >= alert_id


async def test_resume_id_stays_below_an_alert_whose_transaction_is_still_open(env):
    _, _, _, tenant, stream, url = env
    async with (
        await psycopg.AsyncConnection.connect(url) as held,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as other,
    ):
        async with held.transaction():
            seven = await raise_alert(held, tenant.id, "held-r")
            eight = await raise_alert(other, tenant.id, "quick-r")
            live = stream(since_id=seven - 1, heartbeat_interval={"seconds": 1})
            await live.wait_for(lambda r: r.ids == [eight] and r.heartbeats)
            assert live.heartbeats[-1].last_id == eight and live.heartbeats[-1].resume_id < seven
        n = len(live.heartbeats)
        await live.wait_for(lambda r: len(r.heartbeats) > n, within=5)
    assert live.ids == [eight, seven] and live.heartbeats[-1].resume_id >= eight


async def test_bad_stream_requests_are_invalid_argument(env):
    _, meter, _, tenant, _, _ = env
    for request, fields in (
        (meter_pb2.StreamAlertsRequest(since_id=-1, heartbeat_interval={"nanos": 1}, kinds=[99]),
         {"since_id", "heartbeat_interval", "kinds[0]"}),
        (meter_pb2.StreamAlertsRequest(kinds=[0]), {"kinds[0]"}),  # declared, but UNSPECIFIED means nothing here
    ):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in meter.StreamAlerts(request, metadata=tenant.auth("read")):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fields <= set(field_violations(err.value))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in meter.StreamAlerts(meter_pb2.StreamAlertsRequest(), metadata=tenant.auth("record")):
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reader_that_falls_behind_is_ended_with_resource_exhausted(env):
    server, _, _, tenant, _, url = env
    # A stream nobody reads: gRPC flow control stops the server's writes, the buffer (50) fills.
    overflows = server.alert_hub.overflows
    # Without BDP probing the client's HTTP/2 window stays small, so little hides in transport buffers.
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=[("grpc.http2.bdp_probe", 0)])
    subscribed = server.alert_hub.subscribers
    call = meter_pb2_grpc.MeterStub(channel).StreamAlerts(
        meter_pb2.StreamAlertsRequest(since_id=0), metadata=tenant.auth("read")
    )
    await eventually(lambda: server.alert_hub.subscribers > subscribed, what="the unread stream subscribed")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for i in range(40):
            await conn.execute(
                "SELECT meter_raise_alert(%s, 'bulk', 'call_cost', 'info', 0, '', 'bulk/' || g, '', '', '', '', '', 1, 0, "
                "NULL, NULL, repeat('x', 2000), NULL) FROM generate_series(%s::int, %s::int) g",
                (tenant.id, i * 50, i * 50 + 49),
            )
    await eventually(lambda: server.alert_hub.overflows > overflows, what="the unread stream overflowed")
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for response in call:
            received += response.HasField("alert")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "since_id=" in err.value.details()
    assert received < 2000
    await channel.close()
    assert server.alert_hub.subscribers <= 4  # the ended stream let go of its subscription


async def test_a_reader_that_keeps_up_survives_a_burst_larger_than_its_buffer(env):
    _, _, _, tenant, stream, url = env
    live = await stream().subscribed()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "SELECT meter_raise_alert(%s, 'burst', 'call_cost', 'info', 0, '', 'burst/' || g, '', '', '', '', '', 1, 0, "
            "NULL, NULL, 'burst', NULL) FROM generate_series(1, 150) g",
            (tenant.id,),
        )
    await live.wait_alerts(150)
    assert live.error is None and live.ids == sorted(live.ids)


# ---- the periodic evaluator ------------------------------------------------------------------------


async def test_window_cost_error_rate_latency_and_unpriced_rules(env):
    server, meter, admin, tenant, stream, url = env
    await set_rule(admin, tenant, rule("day-cost", "WINDOW_COST", "CRITICAL", amount_nanos=100_000_000, window="DAY"))
    await set_rule(admin, tenant, rule("errors", "ERROR_RATE", window="HOUR", error_rate=0.25, min_calls=4))
    await set_rule(admin, tenant, rule("slow", "LATENCY_P95", window="HOUR", latency={"seconds": 2}, min_calls=3,
                                       scope={"model": "gpt-4.1"}))  # fmt: skip
    await set_rule(admin, tenant, rule("unpriced", "UNPRICED_MODEL", "INFO", window="DAY"))
    live = stream(since_id=0)
    auth = tenant.auth("record")
    for i in range(4):
        await meter.RecordCall(
            record(cost_nanos=30_000_000, latency={"seconds": 3}, outcome=common_pb2.OUTCOME_ERROR if i < 2 else 0),
            metadata=auth,
        )
    await meter.RecordCall(record(provider="acme", model="mystery-1", cost_nanos=None), metadata=auth)
    alerts = await live.wait_alerts(4)
    rounds = server.evaluator.rounds  # three more evaluator rounds raise nothing new
    await eventually(lambda: server.evaluator.rounds >= rounds + 3, what="three evaluator rounds")
    await live.caught_up(await newest_alert_id(url))
    by_rule = {a.rule_id: a for a in live.alerts}
    assert sorted(by_rule) == ["day-cost", "errors", "slow", "unpriced"] and len(live.alerts) == 4
    assert by_rule["day-cost"].observed == 120_000_000 and by_rule["day-cost"].severity == common_pb2.SEVERITY_CRITICAL
    assert by_rule["errors"].observed == 0.5 and by_rule["errors"].model == "gpt-4.1"
    assert by_rule["slow"].observed > 2 and by_rule["slow"].threshold == 2
    assert by_rule["unpriced"].model == "mystery-1" and by_rule["unpriced"].observed == 1
    assert len({a.id for a in alerts}) == 4


async def test_denials_and_expired_reservations(env):
    server, meter, admin, tenant, stream, url = env
    await admin.SetLimit(admin_pb2.SetLimitRequest(limit=limit("one", "REQUESTS", "DAY", 1)), metadata=tenant.auth())
    await set_rule(admin, tenant, rule("denied", "DENIALS", window="HOUR", count=2))
    await set_rule(admin, tenant, rule("leaks", "RESERVATION_EXPIRED", window="HOUR", count=0))
    live = stream(since_id=0, kinds=[common_pb2.ALERT_KIND_DENIALS, common_pb2.ALERT_KIND_RESERVATION_EXPIRED])
    first = await meter.CheckQuota(check(reservation_ttl={"nanos": 300_000_000}), metadata=tenant.auth("check"))
    assert first.allowed

    async def expired():  # the reservation expires unsettled (sweeper every 0.2 s)
        return await server.quota.store.reservation_state(tenant.id, first.reservation_id) == "expired"

    await eventually(expired, what="the reservation expired")
    replies = [await meter.CheckQuota(check(), metadata=tenant.auth("check")) for _ in range(4)]
    assert sum(r.allowed for r in replies) == 1
    alerts = await live.wait_alerts(2, within=15)
    by_rule = {a.rule_id: a for a in alerts}
    assert by_rule["denied"].observed == 3 and by_rule["denied"].threshold == 2
    assert by_rule["leaks"].observed == 1


# ---- webhooks -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def hook_server(statuses: list[int]):
    """A local HTTP server answering POSTs with the given statuses in turn (then 200); records them."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        received.append((headers, body))
        status = statuses.pop(0) if statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook", received
    finally:
        server.close()
        await server.wait_closed()


async def test_webhooks_are_signed_and_retried_with_backoff(env):
    import hashlib
    import hmac
    import json

    server, meter, admin, tenant, _, url = env
    async with hook_server([500, 503]) as (hook_url, received):
        await set_rule(admin, tenant, rule("hooked", "CALL_COST", amount_nanos=1, webhook_url=hook_url,
                                           webhook_secret="topsecret"))  # fmt: skip
        await meter.RecordCall(record(call_id=f"hook-{uuid.uuid4().hex}"), metadata=tenant.auth("record"))

        async def delivered():
            states = await server.alert_store.webhook_states(tenant.id)
            return states if states and states[0]["delivered_at"] else None

        states = await eventually(delivered, what="the webhook delivered")
    assert states[0]["attempts"] == 3 and states[0]["delivered_at"] and len(received) == 3
    headers, body = received[-1]
    alert = json.loads(body)
    assert alert["rule_id"] == "hooked" and alert["kind"] == "call_cost" and alert["tenant_id"] == tenant.id
    mac = hmac.new(b"topsecret", headers["x-meter-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-meter-signature"] == f"sha256={mac}"
    assert headers["x-meter-alert-id"] == str(alert["id"])


# ---- the CLI --------------------------------------------------------------------------------------


async def meter_cli(*args: str) -> tuple[int, str, str]:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterd", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_cli_tail_resumes_from_its_state_file_and_rules_are_managed_from_the_cli(env, tmp_path):
    import json

    server, _, _, tenant, _, url = env
    code, out, err = await meter_cli(
        "alerts", "rules", "set", "--tenant", tenant.id, "--id", "cli-cost", "--kind", "call_cost",
        "--amount-usd", "0.01", "--cooldown", "1m", "--database-url", url,
    )  # fmt: skip
    assert code == 0 and out.startswith("created\tcli-cost\tcall_cost\twarning"), err
    code, out, err = await meter_cli("alerts", "rules", "set", "--tenant", tenant.id, "--id", "bad", "--kind",
                                     "window_cost", "--database-url", url)  # fmt: skip
    assert code != 0 and "rule.amount_nanos" in err and "rule.window" in err
    code, out, _ = await meter_cli("alerts", "rules", "list", "--tenant", tenant.id, "--database-url", url)
    assert out.splitlines()[0].startswith("cli-cost\tcall_cost") and '"amount_nanos":10000000' in out

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        first = [await raise_alert(conn, tenant.id, f"cli{i}", subject=f"s{i}") for i in range(2)]
        state = tmp_path / "tail.json"
        tail = ("alerts", "tail", "--address", f"127.0.0.1:{server.port}", "--api-key", tenant.keys["read"],
                "--heartbeat", "1", "--once", "--state-file", str(state))  # fmt: skip
        code, out, err = await meter_cli(*tail, "--since-id", str(first[0] - 1), "--json")
        assert code == 0, err
        assert [json.loads(line)["id"] for line in out.splitlines()] == [str(i) for i in first]
        assert json.loads(state.read_text())["resume_id"] >= first[1]
        later = await raise_alert(conn, tenant.id, "cli-later", "critical", "team:x")
    code, out, err = await meter_cli(*tail)
    assert code == 0, err
    assert len(out.splitlines()) == 1 and out.startswith(f"#{later} ") and "CRITICAL" in out and "team:x" in out
    code, _, err = await meter_cli("alerts", "tail", "--address", f"127.0.0.1:{server.port}", "--api-key",
                                   tenant.keys["record"], "--once")  # fmt: skip
    assert code != 0 and "PERMISSION_DENIED" in err

    code, out, _ = await meter_cli(
        "alerts", "rules", "delete", "cli-cost", "--tenant", tenant.id, "--database-url", url
    )
    assert code == 0 and out.strip() == "deleted cli-cost"


async def test_cli_tail_once_returns_promptly_and_gives_up_on_an_unreachable_server(env, tmp_path):
    import socket
    import time

    server, _, _, tenant, _, url = env
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        stored = await raise_alert(conn, tenant.id, "once", subject="s-once")
    started = time.monotonic()
    code, out, err = await meter_cli("alerts", "tail", "--address", f"127.0.0.1:{server.port}", "--api-key",
                                     tenant.keys["read"], "--once", "--since-id", str(stored - 1))  # fmt: skip
    took = time.monotonic() - started
    assert code == 0 and out.startswith(f"#{stored} "), err
    # The default heartbeat is 15 s; --once must not wait for it (1 s interval + a process start).
    assert took < 10, took
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    for once in (("--once",), ()):
        started = time.monotonic()
        code, _, err = await meter_cli("alerts", "tail", "--address", dead, "--api-key", "mk_x_y",
                                       "--connect-timeout", "1", *once)  # fmt: skip
        assert code != 0 and f"cannot reach Meter at {dead}" in err and "Traceback" not in err, err
        assert time.monotonic() - started < 20


async def test_stopping_the_server_ends_open_streams_at_once(fresh_database_url):
    import time

    from meter_testing.fixtures import test_config
    from meterd.app import MeterServer

    server = MeterServer(test_config(), fresh_database_url)
    await server.start()
    await asyncio.wait_for(server.ready.wait(), 30)
    tenant = await create_tenant(server)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        live = AlertReader(meter_pb2_grpc.MeterStub(channel), tenant.auth("read"), since_id=0)
        await live.wait_for(lambda r: server.alert_hub.subscribers == 1)
        started = time.monotonic()
        await server.stop(grace=10)
        assert time.monotonic() - started < 5  # not the 10 s grace
        await live.wait_for(lambda r: r.error is not None)
        assert live.error.code() == grpc.StatusCode.UNAVAILABLE and "since_id=0" in live.error.details()
