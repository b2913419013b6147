"""Graceful shutdown: an RPC in flight when SIGTERM-style stop begins still completes."""

from __future__ import annotations

import asyncio

import grpc
import psycopg
from grpc_health.v1 import health_pb2

from meter.v1 import meter_pb2_grpc
from meter_testing.fixtures import running_server
from meter_testing.requests import record


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
                await asyncio.sleep(0.3)
                stopping = asyncio.create_task(server.stop(grace=10))
                await asyncio.sleep(0.3)
                # New RPCs are refused now, so ask the health servicer directly.
                health = await server.health.Check(health_pb2.HealthCheckRequest(), None)
                assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
                assert not in_flight.done()
                await blocker.rollback()  # release: the RPC can now complete
            reply = await in_flight
            assert reply.call_id == "slow" and not reply.duplicate
            await stopping
