"""Input bounds on a real server: out-of-range numbers, times, durations and strings are refused with
INVALID_ARGUMENT before anything runs (issue 10's examples), messages stay small, RecordCalls answers
per item."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.requests import check, field_violations, limit, record

INT64_MAX = 2**63 - 1
MAX_MESSAGE = 4096  # what a caller ever gets back as a status message (bytes)


async def _invalid(coro) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert len((info.value.details() or "").encode()) <= MAX_MESSAGE
    return info.value


async def test_huge_token_counts_are_refused(meter_stub, tenant):
    err = await _invalid(
        meter_stub.RecordCall(
            record(usage=common_pb2.Usage(input_tokens=INT64_MAX, output_tokens=2**62)), metadata=tenant.auth()
        )
    )
    violations = field_violations(err)
    assert "usage.input_tokens" in violations and "usage.output_tokens" in violations
    assert "100000000" in violations["usage.input_tokens"]  # the range is in the message


async def test_huge_estimate_and_cost_are_refused(meter_stub, tenant):
    err = await _invalid(
        meter_stub.CheckQuota(
            check(estimate={"input_tokens": 2**62, "cost_nanos": INT64_MAX}), metadata=tenant.auth("check")
        )
    )
    assert {"estimate.input_tokens", "estimate.cost_nanos"} <= set(field_violations(err))


async def test_usage_end_in_year_9999_is_refused(meter_stub, tenant):
    end = timestamp_pb2.Timestamp(seconds=253402300799)  # 9999-12-31T23:59:59Z
    err = await _invalid(meter_stub.GetUsage(meter_pb2.GetUsageRequest(end=end), metadata=tenant.auth("read")))
    assert "end" in field_violations(err)


async def test_negative_nanos_are_refused(meter_stub, tenant):
    bad = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=-1)
    err = await _invalid(meter_stub.RecordCall(record(occurred_at=bad), metadata=tenant.auth("record")))
    assert "occurred_at" in field_violations(err)


@pytest.mark.parametrize(
    "seconds",
    [2**62, -5, 400_000_000_000],  # beyond the proto's own range too
)
async def test_reservation_ttl_out_of_range_is_refused(meter_stub, tenant, seconds):
    ttl = duration_pb2.Duration(seconds=seconds)
    err = await _invalid(meter_stub.CheckQuota(check(reservation_ttl=ttl), metadata=tenant.auth("check")))
    assert "reservation_ttl" in field_violations(err)


async def test_other_durations_out_of_range_are_refused(meter_stub, admin_stub, tenant):
    await _invalid(
        meter_stub.ExtendReservation(
            meter_pb2.ExtendReservationRequest(reservation_id="r", ttl=duration_pb2.Duration(seconds=2**62)),
            metadata=tenant.auth("check"),
        )
    )
    ten_thousand_years = duration_pb2.Duration(seconds=10_000 * 365 * 86400)
    err = await _invalid(meter_stub.RecordCall(record(latency=ten_thousand_years), metadata=tenant.auth("record")))
    assert "latency" in field_violations(err)
    rule = admin_pb2.AlertRule(
        id="r1",
        kind=common_pb2.ALERT_KIND_CALL_COST,
        amount_nanos=1,
        cooldown=duration_pb2.Duration(seconds=2**62),
    )
    err = await _invalid(admin_stub.SetAlertRule(admin_pb2.SetAlertRuleRequest(rule=rule), metadata=tenant.auth()))
    assert "rule.cooldown" in field_violations(err)


async def test_nul_in_any_string_is_refused(meter_stub, admin_stub, tenant):
    err = await _invalid(admin_stub.GetLimit(admin_pb2.GetLimitRequest(id="\0"), metadata=tenant.auth()))
    assert "id" in field_violations(err)
    await _invalid(admin_stub.DeleteAlertRule(admin_pb2.DeleteAlertRuleRequest(id="a\0"), metadata=tenant.auth()))
    await _invalid(
        meter_stub.ReleaseReservation(
            meter_pb2.ReleaseReservationRequest(reservation_id="\0"), metadata=tenant.auth("check")
        )
    )
    await _invalid(
        meter_stub.GetUsage(
            meter_pb2.GetUsageRequest(filter=meter_pb2.UsageFilter(model="x\0")), metadata=tenant.auth("read")
        )
    )
    await _invalid(admin_stub.CreateApiKey(admin_pb2.CreateApiKeyRequest(name="\0", roles=[1]), metadata=tenant.auth()))


async def test_long_ids_are_refused_and_not_echoed(meter_stub, admin_stub, tenant):
    long_id = "x" * 4096
    err = await _invalid(admin_stub.GetLimit(admin_pb2.GetLimitRequest(id=long_id), metadata=tenant.auth()))
    assert long_id[:200] not in err.details()
    err = await _invalid(
        meter_stub.ReleaseReservation(
            meter_pb2.ReleaseReservationRequest(reservation_id="y" * 1_000_000), metadata=tenant.auth("check")
        )
    )
    assert len(err.details()) < 1000


async def test_long_label_values_are_refused(meter_stub, tenant):
    err = await _invalid(meter_stub.RecordCall(record(labels={"feature": "v" * 257}), metadata=tenant.auth("record")))
    assert "labels[feature]" in field_violations(err)
    # 256 is the documented maximum: accepted, kept whole.
    ok = await meter_stub.RecordCall(record(labels={"feature": "v" * 256}), metadata=tenant.auth("record"))
    assert not ok.duplicate


async def test_violation_lists_are_capped(meter_stub, admin_stub, tenant):
    labels = {f"{i:04d}" + "k" * 70: "v" for i in range(2000)}
    err = await _invalid(meter_stub.RecordCall(record(labels=labels), metadata=tenant.auth("record")))
    assert list(field_violations(err)) == ["labels"]  # counted, not walked key by key
    prices = [admin_pb2.Price(provider="p\0" + "x" * 100, model_pattern="m" * 500) for _ in range(500)]
    err = await _invalid(admin_stub.LoadPrices(admin_pb2.LoadPricesRequest(prices=prices), metadata=tenant.auth()))
    violations = field_violations(err)
    assert len(violations) == 21
    assert violations["..."] == "and 980 more violations"
    assert len(err.details()) <= 1100
    trailers = sum(len(k) + len(v) for k, v in err.trailing_metadata() or ())
    assert trailers < 4096  # status details included, far below gRPC's 8 KiB metadata limit


async def test_undecodable_bytes_are_invalid_argument(channel, tenant):
    for method in ("/meter.v1.Meter/RecordCall", "/meter.v1.MeterAdmin/GetLimit"):
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        for raw in (b"\xff\xff\xff", b"\x0a\x02\xc3\x28"):  # garbage; a string field with invalid UTF-8
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(raw, metadata=tenant.auth())
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, raw, info.value.details())


async def test_unknown_enum_values_are_refused(meter_stub, tenant):
    req = check(mode="CHECK_ONLY")
    req.mode = 99
    err = await _invalid(meter_stub.CheckQuota(req, metadata=tenant.auth("check")))
    assert "mode" in field_violations(err)


async def test_limit_max_is_bounded(admin_stub, tenant):
    err = await _invalid(
        admin_stub.SetLimit(admin_pb2.SetLimitRequest(limit=limit("big", max=INT64_MAX)), metadata=tenant.auth())
    )
    assert "limit.max" in field_violations(err)


async def test_record_calls_empty_is_invalid(meter_stub, tenant):
    await _invalid(meter_stub.RecordCalls(meter_pb2.RecordCallsRequest(), metadata=tenant.auth("record")))


async def test_record_calls_answers_every_item(meter_stub, tenant):
    good = record()
    bad_time = record(occurred_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=-1))
    reply = await meter_stub.RecordCalls(
        meter_pb2.RecordCallsRequest(
            calls=[meter_pb2.RecordCallRequest(), good, bad_time, record(usage=common_pb2.Usage(input_tokens=-1))]
        ),
        metadata=tenant.auth("record"),
    )
    assert [r.index for r in reply.results] == [0, 1, 2, 3]
    codes = [r.error_code for r in reply.results]
    assert codes == ["INVALID_ARGUMENT", "", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    assert reply.results[1].response.call_id == good.call_id
    assert "occurred_at" in reply.results[2].error_message
    assert (reply.recorded, reply.failed) == (1, 3)


async def test_record_calls_only_empty_item(meter_stub, tenant):
    reply = await meter_stub.RecordCalls(
        meter_pb2.RecordCallsRequest(calls=[meter_pb2.RecordCallRequest()]), metadata=tenant.auth("record")
    )
    assert [r.error_code for r in reply.results] == ["INVALID_ARGUMENT"]
    assert reply.failed == 1


async def test_extending_a_reservation_that_matched_no_limit_is_not_not_found(meter_stub, make_tenant):
    # Found by the fuzzer: the extension was applied, yet the caller was told NOT_FOUND.
    tenant = await make_tenant()
    reserved = await meter_stub.CheckQuota(check(), metadata=tenant.auth("check"))
    assert reserved.no_limits_matched and reserved.reservation_id
    extended = await meter_stub.ExtendReservation(
        meter_pb2.ExtendReservationRequest(
            reservation_id=reserved.reservation_id, additional=meter_pb2.Estimate(max_output_tokens=10)
        ),
        metadata=tenant.auth("check"),
    )
    assert extended.allowed and not extended.limits
    assert extended.reservation_expires_at.ToDatetime() >= reserved.reservation_expires_at.ToDatetime()
