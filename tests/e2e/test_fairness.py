"""Fair sharing over a real server: a tenant over its share and a host flooding unknown keys get
RESOURCE_EXHAUSTED with RetryInfo, cheaply, while other tenants are served."""

from __future__ import annotations

import asyncio

import grpc
import psycopg
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from meter.v1 import meter_pb2, meter_pb2_grpc
from meter_testing.fixtures import running_server
from meter_testing.requests import record
from meter_testing.waiting import eventually
from meterd.domain.keys import new_key


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    for detail in rpc_status.from_call(err).details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


async def outcome(call):
    try:
        await call
        return grpc.StatusCode.OK, None
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc


async def test_a_host_flooding_unknown_keys_is_refused_without_database_look_ups(fresh_database_url):
    async with running_server(fresh_database_url, peer_auth_failures=5) as server:
        _, good = await server.keys.create("fair", ["admin"])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=(("authorization", f"Bearer {good}"),))
            before = server.auth_guard.queries

            def usage(key: str):
                return outcome(
                    meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=(("authorization", f"Bearer {key}"),))
                )

            results = [await usage(new_key()[1]) for _ in range(5)]  # the host's budget, spent
            results += await asyncio.gather(*(usage(new_key()[1]) for _ in range(35)))  # answered after a delay
            codes = [code for code, _ in results]
            assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5
            assert set(codes[5:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert 0 < retry_delay(results[-1][1]) <= 10
            assert server.auth_guard.queries - before == 5  # the other 35 cost no query
            # The flood does not lock out a key this server has verified, from the same host.
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=(("authorization", f"Bearer {good}"),))


async def test_a_tenant_over_its_share_waits_then_gets_retry_info_while_another_is_served(fresh_database_url):
    async with running_server(fresh_database_url, tenant_max_in_flight=1, tenant_max_wait=0.2, batch_timeout=10) as s:
        _, key_a = await s.keys.create("flood", ["admin"])
        _, key_b = await s.keys.create("steady", ["admin"])
        auth_a, auth_b = (("authorization", f"Bearer {key_a}"),), (("authorization", f"Bearer {key_b}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            await meter.RecordCall(record(), metadata=auth_a)
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_b)  # B is active: shares apply
            async with await psycopg.AsyncConnection.connect(fresh_database_url) as blocker:
                await blocker.execute("BEGIN")
                await blocker.execute("LOCK TABLE call_ids IN ACCESS EXCLUSIVE MODE")  # A's record hangs
                stuck = asyncio.ensure_future(outcome(meter.RecordCall(record(), metadata=auth_a)))
                await eventually(lambda: s.tenant_gate.in_flight("flood"), what="A's record holding its one slot")
                code, err = await outcome(meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_a))
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 1" in err.details()
                assert retry_delay(err) > 0
                # B is not behind A's queue.
                await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_b)
                await blocker.execute("ROLLBACK")
            assert (await stuck)[0] == grpc.StatusCode.OK
            assert s.tenant_gate.in_flight("flood") == 0


async def test_a_tenant_over_its_rate_is_slowed_to_it_then_told_when_to_retry_while_another_is_served(
    fresh_database_url,
):
    async with running_server(
        fresh_database_url, tenant_max_in_flight=0, tenant_max_rate=20, tenant_max_wait=0.3
    ) as s:  # a burst of 2, then one start every 50 ms; at most 0.3 s of waiting: about 8 of 40 admitted
        _, key_a = await s.keys.create("rated", ["admin"])
        _, key_b = await s.keys.create("other", ["admin"])
        auth_a, auth_b = (("authorization", f"Bearer {key_a}"),), (("authorization", f"Bearer {key_b}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_b)  # B is active: shares apply
            flood = [outcome(meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_a)) for _ in range(40)]
            flooding = asyncio.gather(*flood)
            await meter.GetUsage(meter_pb2.GetUsageRequest(), metadata=auth_b)  # not behind A's queue
            results = await flooding
    codes = [code for code, _ in results]
    # Bounded by the tokens a waiter can see: the burst plus 20/s over its 0.3 s (and however long 40
    # RPCs take to arrive on a loaded machine); unbounded, all 40 would pass.
    assert 2 <= codes.count(grpc.StatusCode.OK) <= 16, codes
    refused = [err for code, err in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert len(refused) + codes.count(grpc.StatusCode.OK) == 40
    assert "at most 20 started per second" in refused[0].details() and len(refused[0].details()) < 400
    assert retry_delay(refused[0]) >= 0.05
