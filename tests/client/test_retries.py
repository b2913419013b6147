"""Deadlines, retries and the spool against a scripted Meter on a real port: a retried record is
byte-for-byte the same request (same call_id, same occurred_at), only transient codes are retried,
and a slow check is decided by the failure policy."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from meter import FailurePolicy, MeterClient, MeterError, MeterUnavailable
from meter.v1 import meter_pb2, meter_pb2_grpc


class Scripted(meter_pb2_grpc.MeterServicer):
    """RecordCall answers from a script of outcomes, one per attempt: "slow" (past the client's
    deadline), a status code to abort with, or "ok"; RecordCalls (the spool) answers duplicate=True."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.received: list[bytes] = []
        self.batches: list[list[str]] = []

    async def CheckQuota(self, request, context):
        await asyncio.sleep(1.0)  # sleep-ok: a server slower than the client's deadline
        return meter_pb2.CheckQuotaResponse(allowed=True)

    async def RecordCall(self, request, context):
        self.received.append(request.SerializeToString())
        step = self.script.pop(0) if self.script else "ok"
        if step == "slow":
            await asyncio.sleep(0.5)  # sleep-ok: a scripted slow answer
        elif step != "ok":
            await context.abort(step, f"scripted {step.name}")
        return meter_pb2.RecordCallResponse(call_id=request.call_id)

    async def RecordCalls(self, request, context):
        self.batches.append([c.call_id for c in request.calls])
        reply = meter_pb2.RecordCallsResponse(duplicates=len(request.calls))
        for i, c in enumerate(request.calls):
            reply.results.add(index=i, response=meter_pb2.RecordCallResponse(call_id=c.call_id, duplicate=True))
        return reply


@contextlib.asynccontextmanager
async def scripted(servicer):
    server = grpc.aio.server()
    meter_pb2_grpc.add_MeterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


FAST = {"record_timeout": 0.2, "retry_backoff": 0.01, "check_timeout": 0.2, "probe_interval": 0}


async def test_a_record_is_retried_identically_after_a_deadline_and_unavailable():
    servicer = Scripted(["slow", grpc.StatusCode.UNAVAILABLE, "ok"])
    async with scripted(servicer) as target:

        def record():
            with MeterClient(target, api_key="mk_a_b", record_retries=2, **FAST) as meter:
                return meter.record("u", "openai", "gpt-4.1", input_tokens=5)

        result = await asyncio.to_thread(record)
    assert not result.spooled and result.call_id
    assert len(servicer.received) == 3 and len(set(servicer.received)) == 1  # the same bytes each time
    assert meter_pb2.RecordCallRequest.FromString(servicer.received[0]).call_id == result.call_id


async def test_exhausted_retries_spool_then_a_duplicate_answer_counts_as_delivered():
    servicer = Scripted([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
    async with scripted(servicer) as target:

        def record_then_flush():
            with MeterClient(target, api_key="mk_a_b", record_retries=1, **FAST) as meter:
                spooled = meter.record("u", "openai", "gpt-4.1", input_tokens=5)
                left = meter.flush(timeout=5)
                return spooled, left, meter.core.delivered_from_spool

        spooled, left, delivered = await asyncio.to_thread(record_then_flush)
    assert spooled.spooled and left == 0 and delivered == 1
    assert len(servicer.received) == 2 and servicer.batches == [[spooled.call_id]]


async def test_permanent_errors_are_raised_at_once():
    servicer = Scripted([grpc.StatusCode.INVALID_ARGUMENT])
    async with scripted(servicer) as target:

        def record():
            with MeterClient(target, api_key="mk_a_b", record_retries=5, **FAST) as meter:
                with pytest.raises(MeterError, match="INVALID_ARGUMENT") as err:
                    meter.record("u", "openai", "gpt-4.1", input_tokens=5)
                assert len(meter.spool) == 0
                return err.value

        error = await asyncio.to_thread(record)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and len(servicer.received) == 1


async def test_a_check_past_its_deadline_is_decided_by_the_policy():
    async with scripted(Scripted([])) as target:

        def check(policy):
            with MeterClient(target, api_key="mk_a_b", policy=policy, **FAST) as meter:
                return meter.check("u", "openai", "gpt-4.1")

        assert (await asyncio.to_thread(check, FailurePolicy.open())).degraded
        with pytest.raises(MeterUnavailable, match="DEADLINE_EXCEEDED"):
            await asyncio.to_thread(check, FailurePolicy.closed())
