"""CheckQuota, reservations, settlement, extension, release and expiry on a real server whose quota
clock the tests drive."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import grpc
import pytest

from e2e.conftest import T0
from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.requests import check, limit, record


async def test_no_limit_matched_is_allowed_and_says_so(env):
    _, meter, _, tenant, _ = env
    reply = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert reply.allowed and reply.no_limits_matched and not reply.limits


async def test_reserve_until_the_limit_then_deny_with_retry_after(env):
    _, meter, set_limits, tenant, clock = env
    await set_limits(limit("per-minute", "REQUESTS", "MINUTE", 3))
    clock.set(T0 + dt.timedelta(seconds=20))
    for expected_used in (1, 2, 3):
        reply = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
        assert reply.allowed and reply.reservation_id
        status = reply.limits[0]
        assert (status.used, status.reserved, status.remaining) == (0, expected_used, 3 - expected_used)
    denied = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert not denied.allowed and not denied.reservation_id
    assert denied.limits[0].denied and denied.limits[0].reserved == 3
    assert denied.retry_after.seconds == 40  # the minute resets at 12:01:00
    assert denied.limits[0].reset_at.ToDatetime(dt.UTC) == T0 + dt.timedelta(minutes=1)
    # CHECK_ONLY reads without holding anything.
    peek = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert not peek.allowed and peek.limits[0].reserved == 3
    clock.set(T0 + dt.timedelta(minutes=1))
    assert (await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed


async def test_denial_by_one_limit_consumes_nothing_from_the_others(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("tokens", "TOTAL_TOKENS", "HOUR", 1000), limit("requests", "REQUESTS", "HOUR", 100))
    big = check(estimate={"input_tokens": 800, "max_output_tokens": 400})
    denied = await meter.CheckQuota(big, metadata=tenant.auth("check"))
    assert not denied.allowed
    by_id = {s.limit_id: s for s in denied.limits}
    assert by_id["tokens"].denied and not by_id["requests"].denied
    assert by_id["requests"].reserved == 0 and by_id["tokens"].reserved == 0


async def test_hierarchy_of_tenant_team_user_and_model_limits(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(
        limit("tenant-budget", "COST_NANOS", "MONTH", 100_000_000_000),
        limit("team", "TOTAL_TOKENS", "DAY", 10_000, selector={"subject_prefix": "team:search/"}),
        limit(
            "per-user", "REQUESTS", "MINUTE", 2, partition="PER_SUBJECT", selector={"subject_prefix": "team:search/"}
        ),
        limit("gpt4-only", "REQUESTS", "HOUR", 1000, selector={"provider": "OpenAI", "model": "gpt-4.1"}),
        limit("other-team", "REQUESTS", "MINUTE", 1, selector={"subject_prefix": "team:ads/"}),
    )
    est = {"input_tokens": 1000, "max_output_tokens": 500}
    reply = await meter.CheckQuota(check(estimate=est), metadata=tenant.auth("check"))
    assert reply.allowed
    by_id = {s.limit_id: s for s in reply.limits}
    assert set(by_id) == {"tenant-budget", "team", "per-user", "gpt4-only"}
    assert by_id["per-user"].partition == "team:search/user:42" and by_id["team"].partition == ""
    assert by_id["tenant-budget"].reserved == reply.estimated_cost_nanos == 1000 * 2000 + 500 * 8000
    assert by_id["team"].reserved == 1500
    # The per-user limit is per subject: user 42 is stopped at 2 a minute, user 7 is not.
    await meter.CheckQuota(check(estimate=est), metadata=tenant.auth("check"))
    third = await meter.CheckQuota(check(estimate=est), metadata=tenant.auth("check"))
    assert not third.allowed and [s.limit_id for s in third.limits if s.denied] == ["per-user"]
    other = await meter.CheckQuota(check(subject="team:search/user:7", estimate=est), metadata=tenant.auth("check"))
    assert other.allowed


async def test_warn_and_shadow_limits_report_but_never_deny(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(
        limit("soft", "REQUESTS", "HOUR", 1, action="WARN"), limit("trial", "REQUESTS", "HOUR", 1, action="SHADOW")
    )
    for _ in range(3):
        reply = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
        assert reply.allowed
    assert all(s.exceeded and not s.denied and s.reserved == 3 for s in reply.limits)
    assert reply.limits[0].remaining == -2 and reply.limits[0].percent_used == 300.0


async def test_cost_limit_needs_a_price_or_an_explicit_cost(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("budget", "COST_NANOS", "DAY", 1_000_000_000))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.CheckQuota(check(provider="acme", model="unknown-9"), metadata=tenant.auth("check"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "acme/unknown-9" in err.value.details()
    explicit = await meter.CheckQuota(
        check(provider="acme", model="unknown-9", estimate={"cost_nanos": 300}), metadata=tenant.auth("check")
    )
    assert explicit.allowed and explicit.limits[0].reserved == 300


async def test_zero_price_does_not_switch_off_token_limits(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("tokens", "TOTAL_TOKENS", "DAY", 100))
    reply = await meter.CheckQuota(
        check(provider="ollama", model="llama3", estimate={"input_tokens": 150}), metadata=tenant.auth("check")
    )
    assert reply.estimated_cost_nanos == 0 and not reply.allowed


async def test_settle_replaces_the_estimate_with_the_actual(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("tokens", "TOTAL_TOKENS", "DAY", 1000))
    reserved = await meter.CheckQuota(
        check(estimate={"input_tokens": 100, "max_output_tokens": 200}), metadata=tenant.auth("check")
    )
    assert reserved.limits[0].reserved == 300
    usage = common_pb2.Usage(input_tokens=700, output_tokens=500)
    recorded = await meter.RecordCall(
        record(reservation_id=reserved.reservation_id, usage=usage), metadata=tenant.auth("record")
    )
    assert recorded.reservation_settled
    status = recorded.limits[0]
    assert (status.used, status.reserved, status.exceeded) == (1200, 0, True)  # over max: reported, not hidden
    # Settling the same reservation again (another call) does not release it twice.
    again = await meter.RecordCall(
        record(reservation_id=reserved.reservation_id, usage=usage), metadata=tenant.auth("record")
    )
    assert not again.reservation_settled and again.limits[0].used == 2400 and again.limits[0].reserved == 0


@pytest.mark.parametrize("other", [{"subject": "team:search/user:7"}, {"provider": "anthropic"}, {"model": "gpt-4.1-mini"},
                                   {"operation": "embed"}], ids=lambda o: next(iter(o)))  # fmt: skip
async def test_a_record_naming_another_calls_reservation_releases_it_and_charges_its_own_counters(env, other):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("per-user", "TOTAL_TOKENS", "DAY", 10_000, partition="PER_SUBJECT"))
    reserved = await meter.CheckQuota(check(estimate={"input_tokens": 500}), metadata=tenant.auth("check"))
    assert reserved.limits[0].reserved == 500
    usage = common_pb2.Usage(input_tokens=100, output_tokens=20)
    recorded = await meter.RecordCall(
        record(reservation_id=reserved.reservation_id, usage=usage, **other), metadata=tenant.auth("record")
    )
    # Not settled: the reservation's subject is not charged for this call, and its hold is given back.
    assert not recorded.reservation_settled
    mine = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert (mine.limits[0].used, mine.limits[0].reserved) == (0 if "subject" in other else 120, 0)
    if "subject" in other:
        theirs = await meter.CheckQuota(check("CHECK_ONLY", subject=other["subject"]), metadata=tenant.auth("check"))
        assert (theirs.limits[0].used, theirs.limits[0].reserved) == (120, 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # it has ended: nothing left to extend
        await meter.ExtendReservation(
            meter_pb2.ExtendReservationRequest(reservation_id=reserved.reservation_id), metadata=tenant.auth("check")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_settle_without_usage_charges_the_estimate(env):
    server, meter, set_limits, tenant, _ = env
    await set_limits(limit("tokens", "TOTAL_TOKENS", "DAY", 1000))
    reserved = await meter.CheckQuota(
        check(estimate={"input_tokens": 100, "max_output_tokens": 200}), metadata=tenant.auth("check")
    )
    request = record(reservation_id=reserved.reservation_id, cost_nanos=None)
    request.ClearField("usage")
    recorded = await meter.RecordCall(request, metadata=tenant.auth("record"))
    assert recorded.reservation_settled and recorded.limits[0].used == 300
    assert recorded.cost_nanos == reserved.estimated_cost_nanos == 100 * 2000 + 200 * 8000
    window = meter_pb2.GetUsageRequest(start=T0 - dt.timedelta(hours=1), end=T0 + dt.timedelta(hours=1))
    usage = await meter.GetUsage(window, metadata=tenant.auth("read"))
    assert (usage.totals.input_tokens, usage.totals.output_tokens) == (100, 200)


async def test_record_without_reservation_adds_to_every_matched_counter(env):
    _, meter, set_limits, tenant, clock = env
    await set_limits(limit("errors", "FAILED_CALLS", "MINUTE", 2), limit("requests", "REQUESTS", "MINUTE", 100))
    for _ in range(2):
        await meter.RecordCall(
            record(outcome=common_pb2.OUTCOME_ERROR, occurred_at=clock.now), metadata=tenant.auth("record")
        )
    # "Stop after 2 provider errors a minute" stops the next call.
    reply = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert not reply.allowed
    by_id = {s.limit_id: s for s in reply.limits}
    assert by_id["errors"].denied and by_id["errors"].used == 2 and by_id["requests"].used == 2


async def test_expired_reservations_are_released_and_visible(env):
    server, meter, set_limits, tenant, clock = env
    await set_limits(limit("requests", "REQUESTS", "HOUR", 1))
    first = await meter.CheckQuota(check(reservation_ttl={"seconds": 30}), metadata=tenant.auth("check"))
    assert first.allowed
    assert first.reservation_expires_at.ToDatetime(dt.UTC) == T0 + dt.timedelta(seconds=30)
    assert not (await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed
    clock.advance(seconds=31)
    assert await server.quota.store.expire(server.quota.db_time()) >= 1
    assert await server.quota.store.reservation_state(tenant.id, first.reservation_id) == "expired"
    again = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert again.allowed and again.limits[0].reserved == 1
    window = meter_pb2.GetUsageRequest(start=T0 - dt.timedelta(hours=1), end=T0 + dt.timedelta(hours=1))
    usage = await meter.GetUsage(window, metadata=tenant.auth("read"))
    assert usage.totals.expired_reservations == 1 and usage.totals.cost_nanos == 0


async def test_reservation_ttl_is_bounded_by_the_server_maximum(env):
    _, meter, _, tenant, _ = env
    reply = await meter.CheckQuota(check(reservation_ttl={"seconds": 10 * 86400}), metadata=tenant.auth("check"))
    assert reply.reservation_expires_at.ToDatetime(dt.UTC) == T0 + dt.timedelta(hours=1)


async def test_retried_reserve_with_same_id_reserves_once(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("requests", "REQUESTS", "HOUR", 10))
    rid = uuid.uuid4().hex
    first = await meter.CheckQuota(check(reservation_id=rid), metadata=tenant.auth("check"))
    second = await meter.CheckQuota(check(reservation_id=rid), metadata=tenant.auth("check"))
    assert first.reservation_id == second.reservation_id == rid
    assert second.allowed and second.limits[0].reserved == 1


async def test_concurrent_retries_of_one_reservation_id_reserve_once(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("requests", "REQUESTS", "HOUR", 10))
    rid = uuid.uuid4().hex
    replies = await asyncio.gather(
        *(meter.CheckQuota(check(reservation_id=rid), metadata=tenant.auth("check")) for _ in range(20))
    )
    assert all(r.allowed and r.reservation_id == rid for r in replies)
    assert {r.reservation_expires_at.ToDatetime(dt.UTC) for r in replies} == {T0 + dt.timedelta(seconds=60)}
    peek = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert peek.limits[0].reserved == 1


async def test_extend_until_denied_then_release(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("output", "OUTPUT_TOKENS", "HOUR", 1000))
    reserved = await meter.CheckQuota(check(estimate={"max_output_tokens": 400}), metadata=tenant.auth("check"))
    more = meter_pb2.ExtendReservationRequest(
        reservation_id=reserved.reservation_id, additional=meter_pb2.Estimate(max_output_tokens=400)
    )
    extended = await meter.ExtendReservation(more, metadata=tenant.auth("check"))
    assert extended.allowed and extended.limits[0].reserved == 800
    stop = await meter.ExtendReservation(more, metadata=tenant.auth("check"))
    assert not stop.allowed and stop.limits[0].denied and stop.limits[0].reserved == 800
    released = await meter.ReleaseReservation(
        meter_pb2.ReleaseReservationRequest(reservation_id=reserved.reservation_id), metadata=tenant.auth("check")
    )
    assert released.released
    peek = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert peek.limits[0].reserved == 0 and peek.limits[0].used == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.ExtendReservation(more, metadata=tenant.auth("check"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    again = await meter.ReleaseReservation(
        meter_pb2.ReleaseReservationRequest(reservation_id=reserved.reservation_id), metadata=tenant.auth("check")
    )
    assert not again.released  # a retry of a release is harmless


async def test_releasing_an_unknown_or_another_tenants_reservation_is_not_found(env, make_clocked_tenant):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("requests", "REQUESTS", "HOUR", 10))
    reserved = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    other = await make_clocked_tenant()
    for rid, who in (("never-reserved", tenant), (reserved.reservation_id, other)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await meter.ReleaseReservation(meter_pb2.ReleaseReservationRequest(reservation_id=rid), metadata=who.auth())
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and rid in err.value.details()
    peek = await meter.CheckQuota(check("CHECK_ONLY"), metadata=tenant.auth("check"))
    assert peek.limits[0].reserved == 1  # the other tenant's attempt did not release it


async def test_deleted_limit_stops_applying(env, clocked):
    _, meter, set_limits, tenant, _ = env
    admin = clocked[2]
    await set_limits(limit("tiny", "REQUESTS", "HOUR", 1))
    await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert not (await meter.CheckQuota(check(), metadata=tenant.auth("check"))).allowed
    await admin.DeleteLimit(admin_pb2.DeleteLimitRequest(id="tiny"), metadata=tenant.auth())
    reply = await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    assert reply.allowed and reply.no_limits_matched


async def test_changing_the_metric_starts_new_counters(env):
    _, meter, set_limits, tenant, _ = env
    await set_limits(limit("l", "REQUESTS", "HOUR", 1))
    await meter.CheckQuota(check(), metadata=tenant.auth("check"))
    await set_limits(limit("l", "INPUT_TOKENS", "HOUR", 50))
    reply = await meter.CheckQuota(check(estimate={"input_tokens": 40}), metadata=tenant.auth("check"))
    assert reply.allowed and reply.limits[0].reserved == 40


async def test_invalid_check_requests(env):
    _, meter, _, tenant, _ = env
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.CheckQuota(meter_pb2.CheckQuotaRequest(estimate=meter_pb2.Estimate(input_tokens=-1)),
                               metadata=tenant.auth("check"))  # fmt: skip
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.CheckQuota(check(), metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
