from __future__ import annotations

import asyncio

import pytest

from meterd.domain.errors import RolledBack, Unavailable
from meterd.service.batching import Batcher, retry_rollbacks


async def test_concurrent_submissions_share_batches_and_keep_their_own_results():
    sizes = []

    async def run(items):
        sizes.append(len(items))
        await asyncio.sleep(0.01)  # sleep-ok: the batch's work takes a while, so submissions queue up
        return [i * 10 for i in items]

    batcher = Batcher(run, workers=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    await batcher.close()
    assert results == [i * 10 for i in range(50)]
    assert sum(sizes) == 50 and max(sizes) > 1 and len(sizes) < 50


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_runs():
    calls = 0

    async def run(items):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable("down")
        return items

    batcher = Batcher(run, workers=1)
    with pytest.raises(Unavailable):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2
    await batcher.close()


async def test_rolled_back_batches_are_run_again_then_reported_unavailable():
    attempts = 0

    async def flaky(items):
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RolledBack("40P01")
        return items

    assert await retry_rollbacks(flaky, [1, 2]) == [1, 2] and attempts == 3

    async def always(items):
        raise RolledBack("40001")

    with pytest.raises(Unavailable, match="retry"):
        await retry_rollbacks(always, [1])


class Poison(Exception):
    pass


async def until(predicate, turns: int = 10_000) -> None:
    """Let the event loop run until predicate() holds (no timer: the work is already scheduled)."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)  # sleep-ok: one event-loop turn, no timer: the awaited work is already scheduled
    raise AssertionError("condition not reached")


async def test_a_content_error_fails_only_its_culprit_and_the_rest_of_the_batch_commits_once():
    committed, attempts = [], []

    async def run(items):
        attempts.append(list(items))
        await asyncio.sleep(0)  # sleep-ok: yields like a database round trip, so the batch is shared
        if any(i < 0 for i in items):
            raise Poison(f"bad value in {items}")  # all or nothing, like a transaction
        committed.extend(items)
        return [i * 10 for i in items]

    batcher = Batcher(run, workers=1, culprit_error=lambda exc: ValueError(f"culprit: {exc}"))
    items = [1, 2, -3, 4, 5, 6, -7, 8]
    results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    await batcher.close()
    for item, result in zip(items, results, strict=True):
        if item < 0:
            assert isinstance(result, ValueError) and str(item) in str(result)
        else:
            assert result == item * 10
    assert sorted(committed) == sorted(i for i in items if i > 0)  # each exactly once
    assert batcher.isolated == 2
    assert len(attempts) <= 1 + 2 * 2 * 3  # bisection: a few transactions per culprit, not one per item


async def test_isolation_keeps_arrival_order():
    seen = []

    async def run(items):
        if -1 in items:
            raise Poison()
        seen.extend(items)
        return items

    batcher = Batcher(run, workers=1)
    await asyncio.gather(*(batcher.submit(i) for i in [1, 2, 3, -1, 4, 5]), return_exceptions=True)
    await batcher.close()
    assert seen == [1, 2, 3, 4, 5]


async def test_batches_take_tenants_in_turn_not_first_come():
    batches = []
    release = asyncio.Event()

    async def run(items):
        batches.append(list(items))
        await release.wait()
        return items

    batcher = Batcher(run, workers=1, max_batch=4, key=lambda item: item[0])
    first = asyncio.ensure_future(batcher.submit(("a", 0)))
    await until(lambda: batches)
    # While that batch is in the database, tenant a queues 10 and then b queues 1.
    flood = [asyncio.ensure_future(batcher.submit(("a", i))) for i in range(1, 11)]
    lone = asyncio.ensure_future(batcher.submit(("b", 0)))
    await until(lambda: batcher.pending() >= 11)
    release.set()
    await asyncio.gather(first, lone, *flood)
    await batcher.close()
    assert ("b", 0) in batches[1]  # served in the very next batch, not after a's ten
    assert [item for item in batches[1] if item[0] == "a"] == [("a", 1), ("a", 2), ("a", 3)]  # a's order kept


async def test_a_stuck_batch_fails_at_the_timeout_and_requests_queued_behind_it_too():
    hang = asyncio.Event()

    async def run(items):
        await hang.wait()
        return items

    batcher = Batcher(run, workers=1, timeout=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    elapsed = loop.time() - started
    assert all(isinstance(r, Unavailable) for r in results)
    assert elapsed < 0.2 * 3
    hang.set()
    assert await batcher.submit(9) == 9  # the worker is free again
    await batcher.close()


async def test_requests_queued_longer_than_the_timeout_fail_without_running():
    ran = []
    gate = asyncio.Event()

    async def run(items):
        ran.extend(items)
        if items == [0]:
            await gate.wait()
        return items

    now = [0.0]
    batcher = Batcher(run, workers=1, timeout=0.1, clock=lambda: now[0])
    first = asyncio.ensure_future(batcher.submit(0))
    await until(lambda: ran)
    late = asyncio.ensure_future(batcher.submit(1))
    await until(batcher.pending)
    now[0] += 0.5  # late has been queued for half a second when the worker comes back
    with pytest.raises(Unavailable):
        await first  # the batch of 0 timed out
    with pytest.raises(Unavailable, match="queued"):
        await late  # queued behind it for longer than the timeout: failed, never run
    assert ran == [0]
    gate.set()
    await batcher.close()


def test_every_connection_bounds_a_hung_socket():
    from meterd.store.db import connection_kwargs

    kwargs = connection_kwargs(timeout=2, statement_timeout=10, tcp_user_timeout=10)
    assert kwargs["keepalives"] == 1 and kwargs["keepalives_count"] >= 1
    # An idle connection whose peer vanished is found dead by keepalives in about tcp_user_timeout.
    assert kwargs["keepalives_idle"] + kwargs["keepalives_interval"] * kwargs["keepalives_count"] <= 10 + 5
    assert kwargs["tcp_user_timeout"] == 10_000
    assert "statement_timeout=10000" in kwargs["options"]
