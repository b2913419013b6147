"""One per process: reads new alert rows and fans them out to this process's StreamAlerts streams.

Any replica (or trigger) may write an alert; NOTIFY meter_alerts wakes every hub, which then reads
the rows themselves (a NOTIFY is a wake-up, not a queue: it is lost while the listener is away),
with a periodic poll as a safety net. One dedicated connection does both LISTEN and the reads.

The cursor. Alert ids come from a sequence: taken at insert, visible at commit, so id 8 may be
visible before id 7 (whose transaction commits later), and a plain `id > last` cursor would skip 7.
The hub keeps
  * `low`: every alert id <= low is final: visible now, or never going to exist (rolled back, or a
    sequence value burnt by ON CONFLICT DO NOTHING);
  * `delivered`: the ids > low already fanned out;
and reads `id > low` each time, fanning out the rows not yet delivered. `low` advances thanks to
this fact: meter_raise_alert makes its transaction take an xid before it takes an alert id, so if
id M is visible in snapshot S, every id below M belongs to a transaction whose xid is < S.xmax.
Once a later snapshot has xmin >= S.xmax, all of those transactions have ended, so every id <= M
is final. Hence each read remembers (M, S.xmax), and `low` moves to M when the xmin passes.
An open transaction holding id 7 therefore delays nothing (8 is fanned out at once) and loses
nothing (7 is fanned out when it commits); it only keeps `low` below 7 until then.

A stream (see `AlertStreams.stream`) subscribes, then replays stored rows from the database, then
takes the hub's rows, skipping the ids it replayed: rows fanned out before it subscribed are
visible to its replay, and rows not yet visible will be fanned out after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from meterd.domain.alerts import Alert, AlertFilter
from meterd.store.alerts import AlertFeed, alert_feed

log = logging.getLogger(__name__)
READ_LIMIT = 5000
OVERFLOW = object()  # put in a subscription's queue when it overflowed
SHUTDOWN = object()  # put in every subscription's queue when the server stops
DRAIN_GRACE = 1.0  # seconds a read may wait, in all, for full stream buffers to drain


class Subscription:
    """One stream's bounded queue. On overflow the queue is emptied (the memory goes back at once)
    and the stream is told to end; the client resumes with since_id."""

    def __init__(self, f: AlertFilter, buffer: int) -> None:
        self.filter = f
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=buffer + 1)  # + 1: room for OVERFLOW
        self.buffer = buffer
        self.overflowed = False
        self.space = asyncio.Event()  # set whenever the stream takes an item

    async def get(self):
        item = await self.queue.get()
        self.space.set()
        return item

    def close(self) -> None:
        """The server is stopping: end the stream now (not after the shutdown grace period)."""
        self.overflowed = True  # accept nothing more
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(SHUTDOWN)

    @property
    def full(self) -> bool:
        return not self.overflowed and self.queue.qsize() >= self.buffer

    def offer(self, alert: Alert) -> bool:
        """False when this alert overflowed the buffer (the stream is to end)."""
        if self.overflowed or not self.filter.matches(alert):
            return True
        if self.queue.qsize() >= self.buffer:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)
            return False
        self.queue.put_nowait(alert)
        return True


class AlertHub:
    def __init__(self, conninfo: str, *, poll_interval: float = 1.0) -> None:
        self.conninfo = conninfo
        self.poll_interval = poll_interval
        self.low: int | None = None  # None until the start-up read has made it final
        self.delivered: set[int] = set()
        self._pending: list[tuple[int, int]] = []  # (max id seen by a read, that read's snapshot xmax)
        self._max_seen = 0
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self.ready = asyncio.Event()
        self.connected = asyncio.Event()
        self.overflows = 0  # streams ended for falling behind
        self.read_total = 0  # alerts read (and fanned out)
        self.on_new: list[Callable[[list[Alert]], None]] = []  # e.g. the webhook sender's wake-up

    def subscribe(self, f: AlertFilter, buffer: int) -> tuple[Subscription, int]:
        """A new subscription and the `low` at that moment (ids <= it will never be fanned out)."""
        assert self.low is not None, "subscribe after ready"
        sub = Subscription(f, buffer)
        self._subs[f.tenant_id].add(sub)
        return sub, self.low

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.filter.tenant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.filter.tenant_id]

    def close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close()

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def run(self) -> None:
        """Runs until cancelled; reconnects after database restarts and carries on from `low`, so
        alerts committed while it was away are read then."""
        delay = 0.5
        while True:
            try:
                async with alert_feed(self.conninfo) as feed:
                    if self.low is None:
                        await self._start(feed)
                    self.connected.set()
                    delay = 0.5
                    while True:
                        while await self._read(feed) >= READ_LIMIT:
                            pass
                        await feed.notifications.wait(self.poll_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep listening whatever happened
                self.connected.clear()
                log.warning("alert hub lost its database connection (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _start(self, feed: AlertFeed) -> None:
        """`low` := the highest id now visible, once every transaction that might hold a lower id has
        ended (normally at once; an open write transaction delays readiness until it ends)."""
        max_id, xmax = await feed.start()
        while True:
            if await feed.snapshot_xmin() >= xmax:
                break
            await asyncio.sleep(0.02)
        self.low = self._max_seen = max_id
        self.ready.set()
        log.info("alert hub ready after alert id %d", self.low)

    async def _read(self, feed: AlertFeed) -> int:
        """One read of the rows above `low`; returns how many rows it read."""
        assert self.low is not None
        # Only rows not delivered yet are read, so a long open transaction (which keeps `low` down)
        # does not make every read return the same rows again.
        xmin, xmax, fresh = await feed.read(self.low, self.delivered, READ_LIMIT)
        count = len(fresh)
        self.read_total += count
        if fresh:
            # Conservative: the highest id ever seen was visible then, so it is visible in this snapshot.
            self._max_seen = max(self._max_seen, fresh[-1].id)
        if self._max_seen > self.low and (not self._pending or self._pending[-1][0] != self._max_seen):
            self._pending.append((self._max_seen, xmax))
        loop = asyncio.get_running_loop()
        deadline = None
        for alert in fresh:
            self.delivered.add(alert.id)
            subs = self._subs.get(alert.tenant_id)
            if not subs:
                continue
            for sub in list(subs):
                if sub.full:
                    # A burst larger than the buffer must not cut off a reader that keeps up: wait
                    # for it a little (DRAIN_GRACE per read at most, shared by all streams).
                    deadline = deadline or loop.time() + DRAIN_GRACE
                    sub.space.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(deadline):
                            await sub.space.wait()
                if not sub.offer(alert):
                    self.overflows += 1
                    log.warning(
                        "a StreamAlerts stream of tenant %s fell %d alerts behind: ending it",
                        alert.tenant_id,
                        sub.buffer,
                    )
            await asyncio.sleep(0)  # let the streams send as we go
        if fresh:
            for hook in self.on_new:
                hook(fresh)
        final = [m for m, x in self._pending if x <= xmin]
        if final and max(final) > self.low:
            self.low = max(final)
            self.delivered = {i for i in self.delivered if i > self.low}
        self._pending = [(m, x) for m, x in self._pending if x > xmin and m > self.low]
        if len(self._pending) > 1000:  # a long open transaction: keep the newest entries only
            self._pending = self._pending[-1000:]
        return count
