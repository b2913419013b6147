"""MeteringService's decisions over the in-memory ports: idempotency, charging limits, settling
a reservation (actual for estimate, or the estimate when no figures), and a reservation named by a
call of other dimensions."""

from __future__ import annotations

import dataclasses

import pytest

from meter_testing.services import DIMS, PRINCIPAL, call, limit
from meterd.domain.errors import AlreadyExists
from meterd.domain.quota import Estimate


async def test_a_call_is_priced_and_charges_its_matched_limits(services):
    await services.set_limits(limit("tok", "total_tokens", 10_000), limit("other", "requests", 9, model="gpt-5"))
    out = await services.metering.record(PRINCIPAL, call("c1", input_tokens=1000, output_tokens=500))
    assert out.result.cost_source == "catalog" and out.result.cost_nanos == 2_000_000 + 4_000_000
    assert [s.limit.id for s in out.states] == ["tok"] and out.states[0].used == 1500
    assert services.counter("tok") == (1500, 0) and services.counter("other") == (0, 0)


async def test_the_same_call_twice_counts_once_and_other_content_is_already_exists(services):
    await services.set_limits(limit("rpm", "requests", 100))
    first = await services.metering.record(PRINCIPAL, call("c1"))
    again = await services.metering.record(PRINCIPAL, call("c1"))
    assert not first.result.duplicate and again.result.duplicate
    assert again.result.cost_nanos == first.result.cost_nanos
    with pytest.raises(AlreadyExists, match="different content"):
        await services.metering.record(PRINCIPAL, call("c1", input_tokens=7))
    assert services.counter("rpm") == (1, 0)


async def test_settling_swaps_the_estimate_for_the_actual(services):
    await services.set_limits(limit("tok", "input_tokens", 10_000))
    r = await services.quota.check(PRINCIPAL, DIMS, Estimate(input_tokens=5000), reserve=True, reservation_id="",
                                   ttl=None)  # fmt: skip
    assert services.counter("tok") == (0, 5000)
    out = await services.metering.record(PRINCIPAL, call("c1", reservation_id=r.reservation_id, input_tokens=1200))
    assert out.reservation_settled and services.counter("tok") == (1200, 0)


async def test_a_call_without_figures_is_charged_and_stored_as_reserved(services):
    await services.set_limits(limit("tok", "input_tokens", 10_000))
    r = await services.quota.check(PRINCIPAL, DIMS, Estimate(input_tokens=700, cost_nanos=42), reserve=True,
                                   reservation_id="", ttl=None)  # fmt: skip
    out = await services.metering.record(PRINCIPAL, call("c1", reservation_id=r.reservation_id, usage_given=False,
                                                         input_tokens=0, output_tokens=0))  # fmt: skip
    assert out.reservation_settled and services.counter("tok") == (700, 0)
    assert out.result.cost_nanos == 42 and out.result.cost_parts.other == 42
    stored = services.metering.store.stored[-1][1]
    assert stored.input_tokens == 700


async def test_a_reservation_named_by_another_subjects_call_is_released_not_settled(services):
    await services.set_limits(limit("per", "input_tokens", 10_000, partition="per_subject"))
    r = await services.quota.check(PRINCIPAL, DIMS, Estimate(input_tokens=900), reserve=True, reservation_id="",
                                   ttl=None)  # fmt: skip
    other = dataclasses.replace(DIMS, subject="user:2")
    out = await services.metering.record(PRINCIPAL, call("c1", reservation_id=r.reservation_id, dims=other))
    assert not out.reservation_settled
    by_partition = {k[3]: (c.used, c.reserved) for k, c in services.state.counters.items()}
    assert by_partition == {"user:1": (0, 0), "user:2": (100, 0)}  # user:1's hold given back, user:2 charged


async def test_a_batch_answers_each_call_with_its_own_outcome(services):
    answers = await services.metering.record_many(PRINCIPAL, [call("a"), call("a", input_tokens=1), call("b")])
    assert not answers[0].result.duplicate
    assert isinstance(answers[1], AlreadyExists)
    assert answers[2].result.call_id == "b"


async def test_an_unpriced_model_is_recorded_at_zero_and_flagged(services):
    unknown = dataclasses.replace(DIMS, provider="acme", model="mystery")
    out = await services.metering.record(PRINCIPAL, call("c1", dims=unknown))
    assert out.result.cost_source == "unpriced" and out.result.cost_nanos == 0
