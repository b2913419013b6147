"""The ports' contract: the same cases against the in-memory fakes (meterd.service.fakes) and the
real stores on real PostgreSQL, so the fakes that tests/service relies on cannot drift.

Every case talks to the ports only (service/ports.py) and asserts what a service relies on:
verdicts, counter readings, reservation states, idempotent answers and the errors raised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from meter_testing.databases import migrated_database
from meter_testing.services import DIMS, call, limit
from meterd.domain.errors import AlreadyExists, NotFound
from meterd.domain.limits import Limit, Usage
from meterd.domain.pricing import CostBreakdown
from meterd.domain.quota import CheckItem, Estimate, ReservationState, charges
from meterd.domain.records import RecordItem
from meterd.service.fakes import FakeLimitStore, FakeQuotaStore, FakeRecordStore, FakeState
from meterd.service.metering import actual_usage
from meterd.service.ports import LimitPort, QuotaPort, RecordPort
from meterd.store.db import Database
from meterd.store.limits import LimitStore
from meterd.store.quota import QuotaStore
from meterd.store.records import RecordStore

T0 = dt.datetime(2031, 5, 6, 10, 30, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Ports:
    tenant: str
    quota: QuotaPort
    records: RecordPort
    limits: LimitPort

    async def limit(self, lim: Limit) -> Limit:
        stored, _ = await self.limits.set(self.tenant, lim)
        return stored.limit

    def check_item(self, limits: list[Limit], estimate: Estimate, *, reservation_id: str = "", reserve: bool = True,
                   client_id: bool = False, ttl: float = 60) -> CheckItem:  # fmt: skip
        usage = estimate.usage(estimate.cost_nanos or 0)
        return CheckItem(self.tenant, "k1", DIMS, reserve, reservation_id or (uuid.uuid4().hex if reserve else ""),
                         client_id, dt.timedelta(seconds=ttl), estimate, estimate.cost_nanos or 0,
                         charges(limits, DIMS.subject, "k1", usage))  # fmt: skip

    def record_item(self, limits: list[Limit], c) -> RecordItem:
        actual = actual_usage(c, 0)
        return RecordItem(self.tenant, "k1", c, 0, CostBreakdown(), "client", "", actual,
                          charges(limits, c.dims.subject, "k1", actual), {lim.id: lim for lim in limits}, T0)  # fmt: skip


@pytest.fixture(scope="module")
async def contract_db(postgres) -> AsyncIterator[Database]:
    async with migrated_database(postgres, max_size=4) as db:
        yield db


@pytest.fixture(params=["fake", "real"])
def ports(request) -> Ports:
    tenant = f"pc-{uuid.uuid4().hex[:8]}"
    if request.param == "fake":
        state = FakeState(lambda: T0)
        return Ports(tenant, FakeQuotaStore(state), FakeRecordStore(state), FakeLimitStore(lambda: T0))
    db = request.getfixturevalue("contract_db")
    return Ports(tenant, QuotaStore(db), RecordStore(db), LimitStore(db))


# ---- quota ---------------------------------------------------------------------------------------


async def test_reservations_hold_until_the_max_and_a_denied_one_changes_nothing(ports):
    tok = await ports.limit(limit("tok", "input_tokens", 1000))
    rpm = await ports.limit(limit("rpm", "requests", 100))
    lims = [rpm, tok]
    big, small = Estimate(input_tokens=600), Estimate(input_tokens=400)
    a, b, c = await ports.quota.check(
        [ports.check_item(lims, big), ports.check_item(lims, big), ports.check_item(lims, small, reserve=False)], T0
    )
    assert (a.allowed, b.allowed, c.allowed) == (True, False, True)  # 600 + 400 = the max exactly: allowed
    assert [(r.used, r.reserved) for r in a.readings] == [(0, 1), (0, 600)]
    assert [(r.used, r.reserved) for r in b.readings] == [(0, 1), (0, 600)]  # nothing of b was applied
    assert a.expires_at == T0 + dt.timedelta(seconds=60) and b.expires_at is None and a.at == T0


async def test_a_repeated_client_reservation_id_is_existing_and_reserves_once(ports):
    rpm = await ports.limit(limit("rpm", "requests", 100))
    item = ports.check_item([rpm], Estimate(), reservation_id="mine", client_id=True)
    (first,) = await ports.quota.check([item], T0)
    (again,) = await ports.quota.check([item], T0 + dt.timedelta(seconds=1))
    assert first.allowed and not first.existing and again.allowed and again.existing
    assert again.expires_at == first.expires_at and again.readings[0].reserved == 1


async def test_release_gives_back_once_and_states_follow(ports):
    rpm = await ports.limit(limit("rpm", "requests", 100))
    item = ports.check_item([rpm], Estimate())
    await ports.quota.check([item], T0)
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.ACTIVE
    assert await ports.quota.reservation_dims(ports.tenant, item.reservation_id) == DIMS
    assert await ports.quota.release(ports.tenant, item.reservation_id, T0) is True
    assert await ports.quota.release(ports.tenant, item.reservation_id, T0) is False
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.RELEASED
    assert await ports.quota.reservation_state(ports.tenant, "never") is None
    assert await ports.quota.reservation_dims(ports.tenant, "never") is None
    (after,) = await ports.quota.check([ports.check_item([rpm], Estimate(), reserve=False)], T0)
    assert after.readings[0].reserved == 0


async def test_expiry_releases_what_outlived_its_ttl(ports):
    rpm = await ports.limit(limit("rpm", "requests", 100, window="hour"))
    item = ports.check_item([rpm], Estimate(), ttl=5)
    await ports.quota.check([item], T0)
    await ports.quota.expire(T0 + dt.timedelta(seconds=4))
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.ACTIVE
    await ports.quota.expire(T0 + dt.timedelta(seconds=6))
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.EXPIRED
    (after,) = await ports.quota.check([ports.check_item([rpm], Estimate(), reserve=False)], T0)
    assert after.readings[0].reserved == 0


async def test_extend_grows_all_or_nothing_and_only_a_live_reservation(ports):
    out = await ports.limit(limit("out", "output_tokens", 1000))
    item = ports.check_item([out], Estimate(max_output_tokens=400))
    await ports.quota.check([item], T0)
    more = Usage(output_tokens=500)
    args = dict(tenant_id=ports.tenant, reservation_id=item.reservation_id, amounts=more,
                ttl=dt.timedelta(seconds=60), limits=[out])  # fmt: skip
    grown = await ports.quota.extend(at=T0 + dt.timedelta(seconds=10), **args)
    refused = await ports.quota.extend(at=T0 + dt.timedelta(seconds=11), **args)
    assert grown.found and grown.allowed and grown.counters[0].reading.reserved == 900
    assert grown.expires_at == T0 + dt.timedelta(seconds=70)
    assert refused.found and not refused.allowed and refused.counters[0].reading.reserved == 900
    gone = await ports.quota.extend(at=T0, **{**args, "reservation_id": "nope"})
    assert not gone.found and not gone.allowed


# ---- records -------------------------------------------------------------------------------------


async def test_a_call_counts_once_and_other_content_under_its_id_is_already_exists(ports):
    rpm = await ports.limit(limit("rpm", "requests", 100))
    first = call("c1", occurred_at=T0)
    (new,) = await ports.records.record_batch([ports.record_item([rpm], first)])
    dup, clash = await ports.records.record_batch(
        [ports.record_item([rpm], first), ports.record_item([rpm], call("c1", occurred_at=T0, input_tokens=1))]
    )
    assert not new.result.duplicate and [(c.limit.id, c.amount, c.reading.used) for c in new.counters] == [
        ("rpm", 1, 1)
    ]
    assert dup.result.duplicate and dup.counters == [] and dup.result.cost_source == "client"
    assert isinstance(clash, AlreadyExists)


async def test_settling_swaps_the_reserved_estimate_for_the_call(ports):
    tok = await ports.limit(limit("tok", "input_tokens", 10_000, window="hour"))
    item = ports.check_item([tok], Estimate(input_tokens=5000))
    await ports.quota.check([item], T0)
    c = call("c1", occurred_at=T0, reservation_id=item.reservation_id, input_tokens=1200)
    (done,) = await ports.records.record_batch([ports.record_item([tok], c)])
    assert done.reservation_settled
    assert [(x.amount, x.reading.used, x.reading.reserved) for x in done.counters] == [(1200, 1200, 0)]
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.SETTLED


async def test_a_reservation_named_by_a_call_of_other_dimensions_is_released(ports):
    tok = await ports.limit(limit("tok", "input_tokens", 10_000, window="hour"))
    item = ports.check_item([tok], Estimate(input_tokens=5000))
    await ports.quota.check([item], T0)
    other = call("c1", occurred_at=T0, reservation_id=item.reservation_id, dims=dataclasses.replace(DIMS, model="x"))
    (done,) = await ports.records.record_batch([ports.record_item([tok], other)])
    assert not done.reservation_settled
    assert [(x.amount, x.reading.used, x.reading.reserved) for x in done.counters] == [(100, 100, 0)]
    assert await ports.quota.reservation_state(ports.tenant, item.reservation_id) is ReservationState.RELEASED


# ---- limits --------------------------------------------------------------------------------------


async def test_limits_are_created_replaced_and_counted_anew_when_what_they_count_changes(ports):
    stored, created = await ports.limits.set(ports.tenant, limit("b", "requests", 5))
    same, created_again = await ports.limits.set(ports.tenant, limit("b", "requests", 6))
    counted, _ = await ports.limits.set(ports.tenant, limit("b", "input_tokens", 6))
    await ports.limits.set(ports.tenant, limit("a", "requests", 1))
    assert created and not created_again
    assert (stored.limit.generation, same.limit.generation, counted.limit.generation) == (1, 1, 2)
    assert same.limit.max == 6 and (await ports.limits.get(ports.tenant, "b")).limit == counted.limit
    assert [s.limit.id for s in await ports.limits.list(ports.tenant)] == ["a", "b"]
    await ports.limits.delete(ports.tenant, "b")
    with pytest.raises(NotFound):
        await ports.limits.get(ports.tenant, "b")
    with pytest.raises(NotFound):
        await ports.limits.delete(ports.tenant, "b")
