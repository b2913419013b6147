"""Group commit: concurrent requests share one database transaction.

Workers each take whatever has queued up while the previous batch was in the database, so under
load batches grow by themselves and at low load a lone request goes alone (no added wait).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from meterd.domain.errors import Unavailable
from meterd.store.db import ROLLED_BACK

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R]]],
        *,
        workers: int = 2,
        max_batch: int = 256,
        linger_turns: int = 32,
    ):
        self.run = run
        self.linger_turns = linger_turns
        self.workers = workers
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[T]) -> list[R]:
        """Queue items together (so they share batches) and wait for all their results, in order."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"batcher-{i}") for i in range(self.workers)]
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            self._queue.put_nowait((item, future))
        if len(futures) == 1:
            return [await futures[0]]
        await asyncio.wait(futures)
        return [future.result() for future in futures]

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Let the RPCs the event loop already has in hand reach the queue before closing the batch:
            # a few loop turns, no timer, so a lone request is not delayed.
            for _ in range(self.linger_turns):
                waiting = self._queue.qsize()
                await asyncio.sleep(0)
                if self._queue.qsize() == waiting:
                    break
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self.run([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


async def retry_rollbacks(run: Callable[[list[T]], Awaitable[list[R]]], items: list[T], attempts: int = 4) -> list[R]:
    """Run a batch transaction again when PostgreSQL rolled it back (deadlock, serialization
    failure): nothing of it was applied, so running it again is exact."""
    for attempt in range(1, attempts + 1):
        try:
            return await run(items)
        except ROLLED_BACK as exc:
            log.warning("batch rolled back (%s), attempt %d of %d", exc.sqlstate, attempt, attempts)
    raise Unavailable("the database kept rolling the transaction back; retry with backoff")
