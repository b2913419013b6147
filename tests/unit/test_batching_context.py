"""Batch workers serve every request, so they must not run in the context of the request that
happened to start them (its trace, its principal), and a tracer sees each batch with what its
requests captured."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars

from meterd.service.batching import Batcher

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="(none)")


async def test_workers_do_not_inherit_the_context_of_the_request_that_started_them():
    seen = []

    async def run(items):
        seen.append(request_id.get())
        return items

    batcher = Batcher(run, workers=1)

    async def submit(rid: str, item: int) -> int:
        request_id.set(rid)
        return await batcher.submit(item)

    assert await asyncio.create_task(submit("first", 1)) == 1
    assert await asyncio.create_task(submit("second", 2)) == 2
    await batcher.close()
    assert seen == ["(none)", "(none)"]


async def test_a_tracer_wraps_each_batch_with_what_each_request_captured():
    batches = []

    class Tracer:
        def capture(self) -> object:
            return request_id.get()

        @contextlib.contextmanager
        def batch(self, size, requests):
            batches.append((size, list(requests)))
            yield

    async def run(items):
        return items

    batcher = Batcher(run, workers=1)
    batcher.tracer = Tracer()

    async def submit(rid: str, item: int) -> int:
        request_id.set(rid)
        return await batcher.submit(item)

    assert await asyncio.create_task(submit("a", 1)) == 1
    assert await asyncio.create_task(submit("b", 2)) == 2
    await batcher.close()
    assert batches == [(1, ["a"]), (1, ["b"])]
