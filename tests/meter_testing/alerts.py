"""A StreamAlerts reader for tests: collects what a stream sends in the background."""

from __future__ import annotations

import asyncio
import time

import grpc

from meter.v1 import meter_pb2, meter_pb2_grpc


class AlertReader:
    """Reads one StreamAlerts call into `alerts` / `heartbeats` until closed or the stream ends
    (then `error` holds the status, if any)."""

    def __init__(self, stub: meter_pb2_grpc.MeterStub, auth, **request) -> None:
        self.call = stub.StreamAlerts(meter_pb2.StreamAlertsRequest(**request), metadata=auth)
        self.alerts: list[meter_pb2.Alert] = []
        self.heartbeats: list[meter_pb2.Heartbeat] = []
        self.arrived: list[float] = []  # wall-clock arrival of each alert (against created_at)
        self.error: grpc.aio.AioRpcError | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for response in self.call:
                if response.HasField("alert"):
                    self.alerts.append(response.alert)
                    self.arrived.append(time.time())  # any-date: compared with created_at, a latency
                else:
                    self.heartbeats.append(response.heartbeat)
                self._changed.set()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc
        finally:
            self._changed.set()

    @property
    def ids(self) -> list[int]:
        return [a.id for a in self.alerts]

    async def wait_for(self, predicate, within: float = 10.0):
        """Waits until predicate(self) is true (or fails the test with what arrived)."""
        deadline = time.monotonic() + within
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._task.done() and not predicate(self)):
                raise AssertionError(
                    f"stream: alerts {self.ids}, heartbeats {len(self.heartbeats)}, error {self.error}"
                )
            self._changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._changed.wait()
            except TimeoutError:
                pass
        return self

    async def subscribed(self, within: float = 10.0) -> AlertReader:
        """Waits for the first heartbeat: the server sends it from the live part of the stream, so
        every alert committed from now on reaches this reader (ask for a short heartbeat_interval)."""
        return await self.wait_for(lambda r: r.heartbeats, within)

    async def caught_up(self, upto: int, within: float = 10.0) -> AlertReader:
        """Waits for a heartbeat whose resume_id is >= `upto`: every alert up to that id that passes
        the stream's filters has then arrived, so what is missing will not come."""
        return await self.wait_for(lambda r: any(h.resume_id >= upto for h in r.heartbeats), within)

    async def wait_alerts(self, n: int, within: float = 10.0) -> list[meter_pb2.Alert]:
        await self.wait_for(lambda r: len(r.alerts) >= n, within)
        return self.alerts

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
