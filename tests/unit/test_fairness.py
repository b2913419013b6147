from __future__ import annotations

import asyncio

import pytest

from meterd.api.fairness import FAILURE_WINDOW, AuthGuard, TenantGate, _peer, peer_host
from meterd.domain.errors import ResourceExhausted
from meterd.domain.keys import Principal, new_key


async def turns(n: int = 10) -> None:
    """Let the event loop run the wake-ups already scheduled (no timer involved)."""
    for _ in range(n):
        await asyncio.sleep(0)  # sleep-ok: one event-loop turn, no timer


def contended_gate(**kwargs) -> TenantGate:
    """A gate on which another tenant ("z") has just been active, so shares apply."""
    gate = TenantGate(**kwargs)
    gate._seen["z"] = gate.clock()
    return gate


async def test_alone_a_tenant_may_use_the_whole_server_and_its_share_applies_once_another_is_active():
    now = [100.0]
    gate = TenantGate(max_in_flight=2, max_wait=0.01, clock=lambda: now[0])
    for _ in range(10):
        await gate.enter("a")  # alone: not capped
    assert gate.in_flight("a") == 10
    await gate.enter("b")
    gate.leave("b")
    with pytest.raises(ResourceExhausted):
        await gate.enter("a")  # b is active: a is far over its share
    now[0] += TenantGate.ACTIVE_WINDOW + 1
    await gate.enter("a")  # b has been quiet for a while: a has the server again


async def test_a_tenant_over_its_share_waits_in_order_and_others_go_straight_in():
    gate = contended_gate(max_in_flight=2, max_wait=5)
    await gate.enter("a")
    await gate.enter("a")
    waiting = [asyncio.ensure_future(gate.enter("a")) for _ in range(3)]
    await turns()
    assert not any(w.done() for w in waiting)
    await gate.enter("b")  # another tenant is not behind a's queue
    assert gate.in_flight("b") == 1
    gate.leave("a")
    await turns()
    assert [w.done() for w in waiting] == [True, False, False]  # first come, first served
    assert gate.in_flight("a") == 2
    for _ in range(4):
        gate.leave("a")
        await turns()
    assert all(w.done() for w in waiting) and gate.in_flight("a") == 0


async def test_a_tenant_waiting_too_long_or_too_many_gets_resource_exhausted_with_a_retry_delay():
    gate = contended_gate(max_in_flight=1, max_wait=0.05)
    await gate.enter("a")
    with pytest.raises(ResourceExhausted, match="within") as err:
        await gate.enter("a")
    assert err.value.retry_after and err.value.retry_after > 0
    waiters = [asyncio.ensure_future(gate.enter("a")) for _ in range(TenantGate.WAITING_FACTOR)]
    await turns()
    with pytest.raises(ResourceExhausted, match="waiting"):
        await gate.enter("a")  # the queue is full: refused at once
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ResourceExhausted) for r in results)
    gate.leave("a")
    assert gate.in_flight("a") == 0
    await gate.enter("a")  # nothing leaked


async def test_after_waiters_gave_up_a_tenant_with_nothing_in_flight_is_admitted_at_once():
    gate = contended_gate(max_in_flight=1, max_wait=0.01)
    await gate.enter("a")
    with pytest.raises(ResourceExhausted):
        await gate.enter("a")
    gate.leave("a")
    await asyncio.wait_for(gate.enter("a"), 0.5)  # not queued behind the dead waiter
    assert gate.in_flight("a") == 1


async def test_a_cancelled_waiter_does_not_keep_a_slot():
    gate = contended_gate(max_in_flight=1, max_wait=5)
    await gate.enter("a")
    waiter = asyncio.ensure_future(gate.enter("a"))
    await turns()
    waiter.cancel()
    await turns()
    gate.leave("a")
    assert gate.in_flight("a") == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard_with(known: dict[str, Principal], clock: Clock, peer_failures: int = 3) -> AuthGuard:
    async def lookup(full_key: str) -> Principal | None:
        return known.get(full_key)

    return AuthGuard(lookup, unknown_ttl=30, peer_failures=peer_failures, clock=clock, refusal_delay=0)


async def test_an_unknown_key_is_looked_up_once_then_refused_from_memory_until_its_ttl():
    clock = Clock()
    guard = guard_with({}, clock, peer_failures=0)
    _, unknown = new_key()
    for _ in range(50):
        assert await guard.lookup(unknown) is None
    assert guard.queries == 1
    clock.now += 31
    assert await guard.lookup(unknown) is None
    assert guard.queries == 2


async def test_a_host_past_its_failure_budget_is_refused_without_queries_but_verified_keys_still_work():
    clock = Clock()
    _, good = new_key()
    principal = Principal("t", "k", frozenset({"admin"}))
    guard = guard_with({good: principal}, clock, peer_failures=3)
    _peer.set("ipv4:10.0.0.7")
    assert await guard.lookup(good) == principal  # verified before the flood
    for _ in range(3):
        assert await guard.lookup(new_key()[1]) is None
    queries = guard.queries
    with pytest.raises(ResourceExhausted, match="failed authentications") as err:
        await guard.lookup(new_key()[1])
    assert 0 < err.value.retry_after <= FAILURE_WINDOW
    assert guard.queries == queries  # refused before any database look-up
    assert await guard.lookup(good) == principal  # a key this server verified still passes
    _peer.set("ipv4:10.0.0.8")
    assert await guard.lookup(new_key()[1]) is None  # another host has its own budget
    _peer.set("ipv4:10.0.0.7")
    clock.now += FAILURE_WINDOW
    assert await guard.lookup(new_key()[1]) is None  # a new window
    _peer.set("")


def test_peer_host_drops_the_port():
    assert peer_host("ipv4:10.0.0.7:53122") == "ipv4:10.0.0.7"
    assert peer_host("ipv6:[::1]:53122") == "ipv6:[::1]"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"


async def test_a_tenant_over_its_rate_waits_for_its_next_token_while_others_go_straight_in():
    now = [100.0]
    gate = TenantGate(max_in_flight=0, max_wait=5, clock=lambda: now[0], max_rate=4)  # a burst of 1
    for _ in range(50):
        await gate.enter("a")  # alone: no rate applies
    gate._seen["z"] = now[0]  # another tenant is active: a's rate applies from here
    waiting = [asyncio.ensure_future(gate.enter("a")) for _ in range(3)]
    await turns()
    assert [w.done() for w in waiting] == [True, False, False]  # the bucket held one token
    await gate.enter("b")  # b's bucket is its own
    now[0] += 0.25  # one token's worth: the timer set for it admits exactly the next waiter
    await asyncio.wait_for(waiting[1], 2)
    await turns()
    assert not waiting[2].done()
    now[0] += 0.25
    await asyncio.wait_for(waiting[2], 2)
    assert gate.in_flight("a") == 53


async def test_a_tenant_waiting_past_max_wait_for_tokens_is_told_when_to_retry():
    now = [100.0]
    gate = TenantGate(max_in_flight=8, max_wait=0.05, clock=lambda: now[0], max_rate=20)  # a burst of 2
    gate._seen["z"] = now[0]
    await gate.enter("a")
    await gate.enter("a")
    waiters = [asyncio.ensure_future(gate.enter("a")) for _ in range(4)]
    results = await asyncio.gather(*waiters, return_exceptions=True)  # the clock never moves: no token
    assert all(isinstance(r, ResourceExhausted) for r in results)
    assert "at most 20 started per second" in str(results[0])
    assert results[0].retry_after >= 3 / 20  # the queue ahead of it, at the tenant's rate
    assert gate.in_flight("a") == 2 and not gate._waiters
    now[0] += 1.0
    await gate.enter("a")  # nothing leaked: the bucket refilled
