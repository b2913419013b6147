"""RecordCall and GetUsage over a real port against a real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import grpc
import pytest

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.requests import check, field_violations, limit, record


async def test_recorded_call_shows_up_in_usage(meter_stub, make_tenant):
    tenant = await make_tenant()
    reply = await meter_stub.RecordCall(record(), metadata=tenant.auth("record"))
    assert not reply.duplicate
    assert reply.cost_nanos == 60_000_000
    assert reply.cost_source == common_pb2.COST_SOURCE_CLIENT
    priced = await meter_stub.RecordCall(
        record(cost_nanos=None, outcome=common_pb2.OUTCOME_ERROR, error_code="rate_limit"),
        metadata=tenant.auth("record"),
    )
    # gpt-4.1 in the bundled catalog: $2/M input, $8/M output, $0.50/M cached input.
    assert priced.cost_source == common_pb2.COST_SOURCE_CATALOG and priced.price_id
    assert priced.cost_nanos == 1000 * 2000 + 500 * 8000 + 200 * 500
    unpriced = await meter_stub.RecordCall(
        record(cost_nanos=None, provider="acme", model="brand-new"), metadata=tenant.auth("record")
    )
    assert unpriced.cost_source == common_pb2.COST_SOURCE_UNPRICED and unpriced.cost_nanos == 0

    usage = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    t = usage.totals
    assert (t.calls, t.successes, t.errors) == (3, 2, 1)
    assert (t.input_tokens, t.output_tokens, t.cached_read_tokens) == (3000, 1500, 600)
    assert t.cost_nanos == 60_000_000 + 6_100_000
    assert t.unpriced_calls == 1
    assert t.error_rate == pytest.approx(1 / 3)
    assert t.cache_hit_rate == pytest.approx(600 / 3600)


async def test_retry_with_same_content_counts_once_and_returns_first_answer(meter_stub, make_tenant):
    tenant = await make_tenant()
    first = await meter_stub.RecordCall(record("call-1"), metadata=tenant.auth("record"))
    again = await meter_stub.RecordCall(record("call-1"), metadata=tenant.auth("record"))
    assert again.duplicate and not first.duplicate
    assert again.recorded_at == first.recorded_at and again.cost_nanos == first.cost_nanos
    usage = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    assert usage.totals.calls == 1


async def test_concurrent_retries_of_one_id_count_once(meter_stub, make_tenant):
    tenant = await make_tenant()
    request = record("hot-id")
    replies = await asyncio.gather(*(meter_stub.RecordCall(request, metadata=tenant.auth("record")) for _ in range(40)))
    assert sum(not r.duplicate for r in replies) == 1
    usage = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    assert usage.totals.calls == 1 and usage.totals.input_tokens == 1000


async def test_same_id_different_content_is_already_exists(meter_stub, make_tenant):
    tenant = await make_tenant()
    await meter_stub.RecordCall(record("call-x"), metadata=tenant.auth("record"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.RecordCall(
            record("call-x", usage=common_pb2.Usage(input_tokens=1)), metadata=tenant.auth("record")
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "call-x" in err.value.details()


async def test_missing_fields_are_invalid_argument_with_field_violations(meter_stub, tenant):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.RecordCall(
            meter_pb2.RecordCallRequest(usage=common_pb2.Usage(input_tokens=-5)), metadata=tenant.auth("record")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(err.value)
    assert set(violations) == {"call_id", "subject", "provider", "model", "usage.input_tokens"}


async def test_occurred_at_in_the_future_is_rejected(meter_stub, tenant):
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # any-date: ahead of the server's clock
    request = record()
    request.occurred_at.FromDatetime(future)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.RecordCall(request, metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "future" in field_violations(err.value)["occurred_at"]


async def test_long_error_message_is_truncated_long_label_value_rejected(meter_stub, postgres, database_url, tenant):
    call_id = uuid.uuid4().hex
    await meter_stub.RecordCall(record(call_id, error_message="x" * 4096), metadata=tenant.auth("record"))
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT length(error_message) FROM calls WHERE call_id = %s", (call_id,))
        assert await cur.fetchone() == (1024,)
    # Issue 12: a label value over 256 characters is refused (it used to be cut, silently merging groups).
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.RecordCall(record(labels={"feature": "y" * 1000}), metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "256" in field_violations(err.value)["labels[feature]"]


async def test_batch_reports_each_item(meter_stub, make_tenant):
    tenant = await make_tenant()
    await meter_stub.RecordCall(record("dup"), metadata=tenant.auth("record"))
    reply = await meter_stub.RecordCalls(
        meter_pb2.RecordCallsRequest(calls=[record("a"), record("dup"), meter_pb2.RecordCallRequest(subject="s")]),
        metadata=tenant.auth("record"),
    )
    assert (reply.recorded, reply.duplicates, reply.failed) == (1, 1, 1)
    assert [r.index for r in reply.results] == [0, 1, 2]
    assert reply.results[2].error_code == "INVALID_ARGUMENT" and "call_id" in reply.results[2].error_message
    usage = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    assert usage.totals.calls == 2


async def test_full_batches_with_repeated_and_overlapping_ids_count_each_call_once(meter_stub, admin_stub, make_tenant):
    tenant = await make_tenant()
    await admin_stub.SetLimit(
        admin_pb2.SetLimitRequest(limit=limit("calls", "REQUESTS", "DAY", 1_000_000)), metadata=tenant.auth("admin")
    )
    # Two requests of 1,000 calls each: ids 0..1499, each request repeating some of its own ids and the two
    # overlapping on 500..999; sent concurrently, so the overlap races between transactions.
    first = [record(f"b{i}", subject=f"user:{i % 37}") for i in range(950)] + [record("b0", subject="user:0")] * 50
    second = [record(f"b{i}", subject=f"user:{i % 37}") for i in range(500, 1500)]
    replies = await asyncio.gather(
        *(meter_stub.RecordCalls(meter_pb2.RecordCallsRequest(calls=c), metadata=tenant.auth("record"))
          for c in (first, second))
    )  # fmt: skip
    assert sum(r.recorded for r in replies) == 1500 and sum(r.failed for r in replies) == 0
    assert sum(r.duplicates for r in replies) == 2000 - 1500
    assert all(r.response.cost_nanos == 60_000_000 for reply in replies for r in reply.results)
    usage = await meter_stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
    assert usage.totals.calls == 1500 and usage.totals.cost_nanos == 1500 * 60_000_000
    check_reply = await meter_stub.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert check_reply.limits[0].used == 1500


async def test_nul_characters_are_invalid_argument_and_do_not_fail_the_rest_of_a_batch(meter_stub, make_tenant):
    tenant = await make_tenant()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.RecordCall(record(subject="user:\x001"), metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "subject" in field_violations(err.value)
    reply = await meter_stub.RecordCalls(
        meter_pb2.RecordCallsRequest(
            calls=[record("ok-1"), record("bad", metadata={"k": "a\x00b"}), record("ok-2", error_message="x\x00")]
        ),
        metadata=tenant.auth("record"),
    )
    assert (reply.recorded, reply.failed) == (1, 2)
    assert [r.error_code for r in reply.results] == ["", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter_stub.CheckQuota(check("CHECK_ONLY", subject="a\x00"), metadata=tenant.auth("check"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
