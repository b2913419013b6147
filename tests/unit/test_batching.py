from __future__ import annotations

import asyncio

import psycopg
import pytest

from meterd.domain.errors import Unavailable
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
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return items

    assert await retry_rollbacks(flaky, [1, 2]) == [1, 2] and attempts == 3

    async def always(items):
        raise psycopg.errors.SerializationFailure("could not serialize")

    with pytest.raises(Unavailable, match="retry"):
        await retry_rollbacks(always, [1])
