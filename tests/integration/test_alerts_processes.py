"""Alerts across real `meter serve` processes: fan-out to streams on every replica, evaluator
leadership that moves when the leader dies, and a database restart under a live stream."""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time

import grpc
import psycopg
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2_grpc
from meter_testing.alerts import AlertReader
from meter_testing.fixtures import TEST_PG_SETTINGS, running_server
from meter_testing.processes import ServeProcess, create_key
from meter_testing.requests import check, limit, record
from meter_testing.waiting import eventually
from meterd.store.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow

LEADER = "alert evaluator: this replica is the leader"


def rule(id: str, kind: str, **fields) -> admin_pb2.SetAlertRuleRequest:
    window = fields.pop("window", None)
    return admin_pb2.SetAlertRuleRequest(
        rule=admin_pb2.AlertRule(
            id=id,
            kind=common_pb2.AlertKind.Value(f"ALERT_KIND_{kind}"),
            severity=common_pb2.SEVERITY_WARNING,
            window=common_pb2.Window(kind=common_pb2.WindowKind.Value(f"WINDOW_KIND_{window}")) if window else None,
            **fields,
        )
    )


async def wait_serving(meter, auth) -> None:
    from meter.v1 import meter_pb2

    async def serving() -> bool:
        try:
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth)
            return True
        except grpc.aio.AioRpcError:
            return False

    await eventually(serving, within=30, what="GetUsage answers")


async def newest_alert_id(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return (await (await conn.execute("SELECT coalesce(max(id), 0) FROM alerts")).fetchone())[0]


@pytest.fixture
async def two_servers(fresh_database_url, tmp_path):
    """Two `meter serve` processes on one database with fast alert loops; yields (processes,
    meter stubs, admin stubs, auth)."""
    args = ("--database-url", fresh_database_url, "--alert-eval-interval", "0.2", "--alert-poll-interval", "1")
    servers = [ServeProcess(tmp_path / f"serve{i}.log", *args) for i in (1, 2)]
    channels = []
    try:
        for s in servers:
            s.wait_for("SERVING", timeout=30)
        key = create_key("alerts", "admin", "--database-url", fresh_database_url)
        auth = (("authorization", f"Bearer {key}"),)
        channels = [grpc.aio.insecure_channel(s.address) for s in servers]
        meters = [meter_pb2_grpc.MeterStub(c) for c in channels]
        for m in meters:
            await wait_serving(m, auth)
        yield servers, meters, [admin_pb2_grpc.MeterAdminStub(c) for c in channels], auth
    finally:
        for c in channels:
            await c.close()
        for s in servers:
            if s.proc.poll() is None:
                assert s.stop() == 0, s.log.read_text()


async def test_alerts_raised_on_either_process_reach_streams_on_both(two_servers, fresh_database_url):
    _, meters, admins, auth = two_servers
    await admins[0].SetAlertRule(rule("every-call", "CALL_COST", amount_nanos=1), metadata=auth)
    readers = [AlertReader(m, auth, heartbeat_interval={"seconds": 1}) for m in meters]
    try:
        for r in readers:  # a heartbeat comes from the live part of a stream: both are subscribed
            await r.subscribed()
        sent: list[float] = []
        for i in range(20):
            sent.append(time.time())  # any-date: compared with created_at, a latency
            await meters[i % 2].RecordCall(record(call_id=f"c{i}"), metadata=auth)
        for r in readers:
            await r.wait_alerts(20)
        newest = await newest_alert_id(fresh_database_url)
        for r in readers:
            await r.caught_up(newest)
        assert readers[0].ids == readers[1].ids and len(set(readers[0].ids)) == 20
        # Commit of the record → arrival on a stream of the OTHER process (created_at is taken inside
        # the recording transaction, just before its commit: an upper bound of commit → arrival).
        latencies = []
        for i in range(20):
            other = readers[(i + 1) % 2]
            alert = other.alerts[other.ids.index(readers[0].alerts[i].id)]
            latencies.append(other.arrived[other.ids.index(alert.id)] - alert.created_at.ToNanoseconds() / 1e9)
        latencies.sort()
        print(f"cross-process alert latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms")  # fmt: skip
        assert latencies[-1] < 0.5  # NOTIFY-driven, not the 1 s safety-net poll

        # 50 concurrent records over both processes take one counter past 80% and 100%: one alert each.
        await admins[1].SetLimit(admin_pb2.SetLimitRequest(limit=limit("fifty", "REQUESTS", "DAY", 50)), metadata=auth)

        async def both_apply_it() -> bool:  # limit changes reach the other process by NOTIFY, not at once
            for m in meters:
                reply = await m.CheckQuota(check("CHECK_ONLY"), metadata=auth)
                if "fifty" not in {s.limit_id for s in reply.limits}:
                    return False
            return True

        await eventually(both_apply_it, what="both processes apply the new limit")
        await asyncio.gather(*(meters[i % 2].RecordCall(record(call_id=f"f{i}"), metadata=auth) for i in range(50)))
        for r in readers:
            await r.wait_for(lambda r: sum(a.limit_id == "fifty" for a in r.alerts) >= 2)
        newest = await newest_alert_id(fresh_database_url)
        for r in readers:
            await r.caught_up(newest)
        for r in readers:
            assert sorted(a.threshold for a in r.alerts if a.limit_id == "fifty") == [80, 100]
    finally:
        for r in readers:
            await r.close()


async def test_evaluator_leadership_moves_when_the_leader_is_killed(two_servers):
    servers, meters, admins, auth = two_servers
    await eventually(lambda: any(LEADER in s.log.read_text() for s in servers), what="an evaluator leader")
    leaders = [i for i, s in enumerate(servers) if LEADER in s.log.read_text()]
    assert len(leaders) == 1
    leader, survivor = leaders[0], 1 - leaders[0]

    await admins[survivor].SetAlertRule(rule("cost-a", "WINDOW_COST", amount_nanos=1, window="DAY"), metadata=auth)
    reader = AlertReader(meters[survivor], auth, since_id=0)
    try:
        await meters[survivor].RecordCall(record(), metadata=auth)
        await reader.wait_alerts(1)
        servers[leader].kill()  # SIGKILL: no goodbye; its session (and lock) ends with its socket
        await admins[survivor].SetAlertRule(rule("cost-b", "WINDOW_COST", amount_nanos=2, window="DAY"), metadata=auth)
        await reader.wait_alerts(2, within=15)
        assert [a.rule_id for a in reader.alerts] == ["cost-a", "cost-b"]
        assert LEADER in servers[survivor].log.read_text()
    finally:
        await reader.close()


async def in_child(pg: EmbeddedPostgres, action: str) -> None:
    """pg.<action>() in a child process: its pg_ctl runs switch user, which forks the way gRPC's
    threads do not survive in this process (the child sometimes crashed before exec)."""
    code = (
        "import sys; from pathlib import Path; from meterd.store.embedded import EmbeddedPostgres; "
        f"getattr(EmbeddedPostgres(Path({str(pg.data_dir)!r}), settings={TEST_PG_SETTINGS!r}), {action!r})()"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    assert await proc.wait() == 0


async def test_a_database_restart_under_a_live_stream_loses_no_alert(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg", settings=TEST_PG_SETTINGS)
    await in_child(pg, "start")
    url = pg.url()
    try:
        async with running_server(url, alert_poll_interval=5, health_interval=0.3) as server:
            _, key = await server.keys.create("restart", ["admin"])
            auth = (("authorization", f"Bearer {key}"),)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                meter = meter_pb2_grpc.MeterStub(channel)
                await admin_pb2_grpc.MeterAdminStub(channel).SetAlertRule(
                    rule("every-call", "CALL_COST", amount_nanos=1), metadata=auth
                )
                live = await AlertReader(meter, auth, heartbeat_interval={"seconds": 1}).subscribed()
                for i in range(3):
                    await meter.RecordCall(record(call_id=f"before{i}"), metadata=auth)
                await live.wait_alerts(3)

                await in_child(pg, "force_stop")
                await asyncio.sleep(0.5)  # sleep-ok: the database stays down a while (an outage, not a barrier)
                await in_child(pg, "start")
                # Committed before the hub is back: their NOTIFYs reach nobody; the reader finds them.
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    for i in range(3):
                        await conn.execute(
                            "SELECT meter_raise_alert('restart', 'manual', 'call_cost', 'critical', 0, '', %s, '', '', '',"
                            " '', '', 1, 0, NULL, NULL, 'while away', NULL)",
                            (f"away{i}",),
                        )

                async def recorded() -> bool:  # records work again once the pool has reconnected
                    try:
                        await meter.RecordCall(record(call_id="after"), metadata=auth)
                        return True
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.UNAVAILABLE
                        return False

                await eventually(recorded, within=20, what="RecordCall works again")
                await live.wait_alerts(7, within=20)
                await live.caught_up(await newest_alert_id(url), within=20)
                assert live.error is None
                assert len(live.ids) == 7 and len(set(live.ids)) == 7
                messages = [a.message for a in live.alerts]
                assert messages[3:6] == ["while away"] * 3 and re.search("call after", messages[6])
                await live.close()
    finally:
        await in_child(pg, "force_stop")
