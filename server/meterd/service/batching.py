"""Group commit: concurrent requests share one database transaction, never one fate.

Workers each take whatever has queued up while the previous batch was in the database, so under
load batches grow by themselves and at low load a lone request goes alone (no added wait).

Isolation: a batch that fails for a reason tied to its content (any error but "the database is
unavailable") is split in halves and each half run again, down to the single culprit, which alone
gets the error. Nothing of a failed transaction was applied, so running its items again is exact, and
the no-failure path costs nothing more. Per-item savepoints were the alternative; they would add a
statement per item on every batch and cannot undo the pre-summed counter and rollup deltas.

Fairness: each key (the tenant) has its own queue and a batch takes one item from each key in turn,
so a tenant with a thousand queued items does not stand in front of another tenant's one.

Bounded waits: a batch that has not finished within `timeout` is abandoned (its requests get
UNAVAILABLE, its connection is discarded), and a request still queued after `timeout` fails the same
way instead of waiting behind a stuck database for the client's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, Literal, Protocol, TypeVar, overload

from meterd.domain.errors import MeterError, RolledBack, Unavailable

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class BatchTracer(Protocol):
    """Optional tracing (meterd/tracing.py): capture() runs in the request's context, batch() wraps
    the batch's run with what the requests captured."""

    def capture(self) -> object: ...

    def batch(self, size: int, requests: Sequence[object]) -> contextlib.AbstractContextManager[None]: ...


class _Entry:
    __slots__ = ("future", "item", "queued_at", "trace")

    def __init__(self, item, future: asyncio.Future, queued_at: float, trace: object = None) -> None:
        self.item, self.future, self.queued_at, self.trace = item, future, queued_at, trace


def _no_key(_item) -> Hashable:
    return None


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R]]],
        *,
        workers: int = 2,
        max_batch: int = 256,
        linger_turns: int = 32,
        key: Callable[[T], Hashable] = _no_key,
        timeout: float | None = None,
        culprit_error: Callable[[Exception], Exception] = lambda exc: exc,
        clock: Callable[[], float] = time.monotonic,
    ):
        """key: the fairness unit (tenant); timeout: seconds a batch may run and a request may stay
        queued; culprit_error: turns the exception of a batch of one into the error its caller sees."""
        self.run = run
        self.linger_turns = linger_turns
        self.workers = workers
        self.max_batch = max_batch
        self.key = key
        self.timeout = timeout
        self.culprit_error = culprit_error
        self.clock = clock  # ages queued requests
        self._queues: dict[Hashable, deque[_Entry]] = {}  # insertion order is the round-robin order
        self._pending = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.isolated = 0  # culprits found by splitting failed batches (for tests and logs)
        self.tracer: BatchTracer | None = None

    def pending(self) -> int:
        return self._pending

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    @overload
    async def submit_many(self, items: list[T], *, return_exceptions: Literal[False] = False) -> list[R]: ...
    @overload
    async def submit_many(self, items: list[T], *, return_exceptions: Literal[True]) -> list[R | BaseException]: ...
    async def submit_many(
        self, items: list[T], *, return_exceptions: bool = False
    ) -> list[R] | list[R | BaseException]:
        """Queue items together (so they share batches) and wait for all their results, in order;
        return_exceptions: an item's error is its result (else the first error is raised)."""
        if not self._tasks:
            # Started by the first request, but in an empty context: the workers serve every later
            # request too, so they must not carry this one's context variables (its trace, its principal).
            self._tasks = [
                asyncio.create_task(self._work(), name=f"batcher-{i}", context=contextvars.Context())
                for i in range(self.workers)
            ]
        loop = asyncio.get_running_loop()
        now = self.clock()
        trace = self.tracer.capture() if self.tracer is not None else None
        futures: list[asyncio.Future[R]] = []
        for item in items:
            future = loop.create_future()
            futures.append(future)
            key = self.key(item)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
            queue.append(_Entry(item, future, now, trace))
        self._pending += len(items)
        self._wake.set()
        if len(futures) == 1:  # RecordCall, CheckQuota: asyncio.wait's waiter and callbacks cost ~10 us
            try:
                return [await futures[0]]
            except Exception as exc:
                if not return_exceptions:
                    raise
                alone: list[R | BaseException] = [exc]
                return alone
        await asyncio.wait(futures)
        errors = [future.exception() for future in futures]  # each retrieved: no "never retrieved" noise
        if not return_exceptions:
            for error in errors:
                if error is not None:
                    raise error
        return [future.result() if error is None else error for future, error in zip(futures, errors, strict=True)]

    def _take(self) -> list[_Entry]:
        """Up to max_batch live entries, one per key in turn; entries queued longer than the
        timeout are failed here (they are at the heads, each queue being in arrival order)."""
        batch: list[_Entry] = []
        expired_before = self.clock() - self.timeout if self.timeout is not None else None
        while self._queues and len(batch) < self.max_batch:
            for key in list(self._queues):
                queue = self._queues[key]
                entry = queue.popleft()
                self._pending -= 1
                if not queue:
                    del self._queues[key]
                elif len(self._queues) > 1:
                    self._queues[key] = self._queues.pop(key)  # to the back of the round
                if entry.future.done():  # the caller went away (deadline, cancellation)
                    continue
                if expired_before is not None and entry.queued_at < expired_before:
                    entry.future.set_exception(
                        Unavailable(
                            f"queued for more than {self.timeout:g}s behind a slow database; retry with backoff"
                        )
                    )
                    continue
                batch.append(entry)
                if len(batch) >= self.max_batch:
                    break
        return batch

    async def _work(self) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            # Let the RPCs the event loop already has in hand reach the queue before closing the batch:
            # a few loop turns, no timer, so a lone request is not delayed.
            for _ in range(self.linger_turns):
                waiting = self._pending
                await asyncio.sleep(0)
                if self._pending == waiting:
                    break
            batch = self._take()
            if batch and self.tracer is not None:
                with self.tracer.batch(len(batch), [entry.trace for entry in batch]):
                    await self._execute(batch)
            elif batch:
                await self._execute(batch)

    async def _execute(self, batch: list[_Entry]) -> None:
        if self.timeout is None:
            await self._settle(batch)
            return
        task = asyncio.ensure_future(self._settle(batch))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.timeout)
        except asyncio.CancelledError:  # close(): the batch goes with its worker
            task.cancel()
            raise
        if done:
            return
        # Not awaited: its clean-up may itself hang on a dead socket (bounded by the TCP timeouts).
        task.cancel()
        task.add_done_callback(_ignore_result)
        log.warning("a batch of %d did not finish within %gs; abandoned", len(batch), self.timeout)
        exc = Unavailable(f"the database did not finish the transaction within {self.timeout:g}s; retry with backoff")
        for entry in batch:
            if not entry.future.done():
                entry.future.set_exception(exc)

    async def _settle(self, batch: list[_Entry]) -> None:
        """Run the batch; on a content error split it until the culprits stand alone."""
        try:
            results = await self.run([entry.item for entry in batch])
        except MeterError as exc:
            # Unavailable and the like concern the database, not one request: the whole batch shares them.
            _fail(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - isolated below; only the culprit sees it
            if len(batch) == 1:
                self.isolated += 1
                _fail(batch, self.culprit_error(exc))
                return
            log.warning("a batch of %d failed (%s: %s); isolating the culprit", len(batch), type(exc).__name__, exc)
            half = len(batch) // 2
            # In order: the first half commits before the second runs, so arrival order is kept.
            await self._settle(batch[:half])
            await self._settle(batch[half:])
            return
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def _fail(batch: list[_Entry], exc: BaseException) -> None:
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(exc)


def _ignore_result(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("abandoned batch ended with %s", type(task.exception()).__name__)


async def retry_rollbacks(run: Callable[[list[T]], Awaitable[list[R]]], items: list[T], attempts: int = 4) -> list[R]:
    """Run a batch transaction again when PostgreSQL rolled it back (deadlock, serialization
    failure): nothing of it was applied, so running it again is exact."""
    for attempt in range(1, attempts + 1):
        try:
            return await run(items)
        except RolledBack as exc:
            log.warning("batch rolled back (%s), attempt %d of %d", exc.sqlstate, attempt, attempts)
    raise Unavailable("the database kept rolling the transaction back; retry with backoff")
