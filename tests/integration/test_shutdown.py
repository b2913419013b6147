"""Graceful shutdown: an RPC in flight when SIGTERM-style stop begins still completes."""

from __future__ import annotations

import asyncio

import grpc
import psycopg
from grpc_health.v1 import health_pb2

from meter.v1 import meter_pb2_grpc
from meter_testing.fixtures import running_server
from meter_testing.requests import record
from meter_testing.waiting import eventually


async def test_in_flight_rpc_finishes_during_graceful_stop(fresh_database_url):
    async with running_server(fresh_database_url) as server:
        _, key = await server.keys.create("drain", ["admin"])
        auth = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter = meter_pb2_grpc.MeterStub(channel)
            # Hold the idempotency row's lock so the RPC is provably in flight (blocked in the database).
            async with await psycopg.AsyncConnection.connect(fresh_database_url) as blocker:
                await blocker.execute(
                    "INSERT INTO call_ids (tenant_id, call_id, occurred_at, content_hash, cost_nanos, cost_source)"
                    " VALUES ('drain', 'slow', now(), '\\x00', 0, 'client')"
                )
                in_flight = asyncio.ensure_future(meter.RecordCall(record("slow"), metadata=auth))

                async def blocked() -> bool:  # the RPC's statement waits for the blocker's lock
                    async with await psycopg.AsyncConnection.connect(fresh_database_url) as probe:
                        cur = await probe.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock'"
                        )
                        return (await cur.fetchone())[0] > 0

                await eventually(blocked, what="the RecordCall blocked in the database")
                stopping = asyncio.create_task(server.stop(grace=10))

                async def not_serving() -> bool:  # new RPCs are refused now: ask the servicer directly
                    health = await server.health.Check(health_pb2.HealthCheckRequest(), None)
                    return health.status == health_pb2.HealthCheckResponse.NOT_SERVING

                await eventually(not_serving, what="health NOT_SERVING while stopping")
                assert not in_flight.done()
                await blocker.rollback()  # release: the RPC can now complete
            reply = await in_flight
            assert reply.call_id == "slow" and not reply.duplicate
            await stopping
