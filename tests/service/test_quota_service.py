"""QuotaService's decisions over the in-memory ports: deny rule, all-or-nothing reservations,
retries of a client-chosen id, release and extension, validation."""

from __future__ import annotations

import datetime as dt

import pytest

from meter_testing.services import DIMS, PRINCIPAL, limit
from meterd.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from meterd.domain.quota import Estimate


async def test_check_only_allows_up_to_the_max_and_denies_beyond_without_changing_counters(services):
    await services.set_limits(limit("rpm", "requests", 2))
    first = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=None)
    second = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=None)
    third = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=False, reservation_id="", ttl=None)
    assert first.allowed and second.allowed and not third.allowed
    assert services.counter("rpm") == (0, 2)  # the denied check took nothing
    assert third.states[0].denied and third.states[0].remaining == 0
    # A minute window: the room comes back at the next minute.
    assert third.retry_after == dt.timedelta(minutes=1) - (services.clock.now - services.clock.now.replace(second=0))


async def test_a_denied_reserve_takes_nothing_from_any_matched_limit(services):
    await services.set_limits(limit("tokens", "input_tokens", 1000), limit("rpm", "requests", 100))
    big = Estimate(input_tokens=600)
    ok = await services.quota.check(PRINCIPAL, DIMS, big, reserve=True, reservation_id="", ttl=None)
    denied = await services.quota.check(PRINCIPAL, DIMS, big, reserve=True, reservation_id="", ttl=None)
    assert ok.allowed and ok.reservation_id and not denied.allowed and denied.reservation_id == ""
    assert services.counter("tokens") == (0, 600) and services.counter("rpm") == (0, 1)
    assert [s.denied for s in denied.states] == [False, True]  # the limits in id order: rpm, tokens


async def test_warn_and_shadow_limits_report_but_never_deny(services):
    await services.set_limits(
        limit("soft", "requests", 1, action="warn"), limit("shadow", "requests", 1, action="shadow")
    )
    for _ in range(3):
        result = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=None)
        assert result.allowed
    assert result.states[0].exceeded and not result.states[0].denied


async def test_an_amount_of_zero_is_denied_once_the_limit_is_reached(services):
    errors = limit("errors", "failed_calls", 1)
    await services.set_limits(errors)
    assert (await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=False, reservation_id="", ttl=None)).allowed
    services.preset(errors, used=1)
    assert not (
        await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=False, reservation_id="", ttl=None)
    ).allowed


async def test_a_retried_client_reservation_id_reserves_once(services):
    await services.set_limits(limit("rpm", "requests", 5))
    a = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="r-1", ttl=None)
    b = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="r-1", ttl=None)
    assert a.allowed and b.allowed and a.reservation_id == b.reservation_id == "r-1"
    assert a.expires_at == b.expires_at
    assert services.counter("rpm") == (0, 1)


async def test_release_gives_back_once_and_an_unknown_id_is_not_found(services):
    await services.set_limits(limit("rpm", "requests", 5))
    r = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=None)
    assert await services.quota.release(PRINCIPAL, r.reservation_id) is True
    assert await services.quota.release(PRINCIPAL, r.reservation_id) is False
    assert services.counter("rpm") == (0, 0)
    with pytest.raises(NotFound):
        await services.quota.release(PRINCIPAL, "never-was")


async def test_extend_grows_the_hold_until_the_limit_then_denies(services):
    await services.set_limits(limit("out", "output_tokens", 1000))
    r = await services.quota.check(PRINCIPAL, DIMS, Estimate(max_output_tokens=400, cost_nanos=0), reserve=True,
                                   reservation_id="", ttl=None)  # fmt: skip
    more = Estimate(max_output_tokens=500, cost_nanos=0)
    grown = await services.quota.extend(PRINCIPAL, r.reservation_id, more, ttl=None)
    refused = await services.quota.extend(PRINCIPAL, r.reservation_id, more, ttl=None)
    assert grown.allowed and not refused.allowed and refused.states[0].denied
    assert services.counter("out") == (0, 900)
    with pytest.raises(NotFound):
        await services.quota.extend(PRINCIPAL, "gone", more, ttl=None)


async def test_expired_reservations_are_swept_back(services):
    await services.set_limits(limit("rpm", "requests", 5))
    await services.quota.check(
        PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=dt.timedelta(seconds=5)
    )
    services.clock.advance(seconds=6)
    assert await services.quota.store.expire(services.quota.db_time()) == 1
    assert services.counter("rpm") == (0, 0)


async def test_an_unpriced_model_under_a_cost_limit_is_a_failed_precondition(services):
    await services.set_limits(limit("budget", "cost_nanos", 10**9))
    unpriced = DIMS.__class__("user:1", "acme", "mystery", "chat", {})
    with pytest.raises(FailedPrecondition, match="no price"):
        await services.quota.check(PRINCIPAL, unpriced, Estimate(input_tokens=10), reserve=False, reservation_id="",
                                   ttl=None)  # fmt: skip
    priced = await services.quota.check(PRINCIPAL, DIMS, Estimate(input_tokens=1_000_000), reserve=False,
                                        reservation_id="", ttl=None)  # fmt: skip
    assert priced.estimated_cost_nanos == 2_000_000_000 and not priced.unpriced


async def test_bad_requests_list_every_problem(services):
    with pytest.raises(InvalidArgument) as err:
        await services.quota.check(PRINCIPAL, DIMS, Estimate(input_tokens=-1), reserve=True,
                                   reservation_id="x" * 200, ttl=dt.timedelta(0))  # fmt: skip
    fields = [f for f, _ in err.value.violations]
    assert fields == ["estimate.input_tokens", "reservation_id", "reservation_ttl"]


async def test_denials_are_reported_to_the_denial_counter(services):
    seen = []
    services.quota.on_denied = lambda tenant, dims, at: seen.append((tenant, dims.subject, at))
    rpm = limit("rpm", "requests", 1)
    await services.set_limits(rpm)
    services.preset(rpm, used=1)
    result = await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=False, reservation_id="", ttl=None)
    assert not result.allowed and seen == [("t1", "user:1", services.clock.now)]


async def test_the_sweeper_works_a_backlog_off_in_small_paced_batches(services):
    """A backlog of expired reservations goes in batches of SWEEP_BATCH, each followed by a pause as
    long as the batch took (so the sweeper holds the database at most half the time), then the
    sweeper waits its interval."""
    import asyncio

    from meterd.service.quota import SWEEP_BATCH

    await services.set_limits(limit("rpm", "requests", 10**6))
    for _ in range(2 * SWEEP_BATCH + 5):
        await services.quota.check(PRINCIPAL, DIMS, Estimate(), reserve=True, reservation_id="", ttl=None)
    services.clock.advance(hours=2)
    sizes: list[int] = []
    store_expire = services.quota.store.expire

    async def expire(at, batch):
        sizes.append(await store_expire(at, batch))
        return sizes[-1]

    services.quota.store.expire = expire  # type: ignore[method-assign]
    ticks = iter(range(0, 10_000, 7))  # each batch "takes" 7 time units
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 4:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await services.quota.sweep_expired(60.0, sleep=sleep, monotonic=lambda: float(next(ticks)))
    assert sizes == [SWEEP_BATCH, SWEEP_BATCH, 5, 0]
    assert pauses == [7.0, 7.0, 60.0, 60.0]  # paced while full batches come, then the interval
    assert services.counter("rpm") == (0, 0)
