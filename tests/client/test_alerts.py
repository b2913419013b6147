"""alerts() resumes after a disconnect, and after a silent stream, from the last alert id it yielded.

Meter's StreamAlerts is being built elsewhere; these tests run a real grpc.aio server on a real port
whose servicer implements only StreamAlerts, scripted per connection."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import grpc
import pytest

from meter import AsyncMeterClient, MeterAuthError, MeterClient
from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc


def alert(i: int) -> meter_pb2.StreamAlertsResponse:
    return meter_pb2.StreamAlertsResponse(
        alert=meter_pb2.Alert(id=i, kind=common_pb2.ALERT_KIND_LIMIT_THRESHOLD, message=f"alert {i}")
    )


class ScriptedAlerts(meter_pb2_grpc.MeterServicer):
    """1st connection: a heartbeat, alerts 1 and 2, then UNAVAILABLE. 2nd: alert 3, then silence (no
    heartbeats: a dead peer). 3rd and later: the alerts after since_id up to 5, then silence."""

    def __init__(self, deny: bool = False) -> None:
        self.since_ids: list[int | None] = []
        self.keys: list[str] = []
        self.deny = deny

    async def StreamAlerts(self, request, context):
        self.since_ids.append(request.since_id if request.HasField("since_id") else None)
        self.keys.append(dict(context.invocation_metadata()).get("authorization", ""))
        if self.deny:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "needs the 'read' role")
        connection = len(self.since_ids)
        if connection == 1:
            yield meter_pb2.StreamAlertsResponse(heartbeat=meter_pb2.Heartbeat(last_id=0))
            yield alert(1)
            yield alert(2)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "replica shutting down")
        elif connection == 2:
            yield alert(3)
        else:
            for i in range(request.since_id + 1, 6):
                yield alert(i)
        await asyncio.sleep(60)  # sleep-ok: a silent peer, until the client gives up on us


@contextlib.asynccontextmanager
async def alerts_server(servicer: ScriptedAlerts):
    server = grpc.aio.server()
    meter_pb2_grpc.add_MeterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


async def test_async_alerts_resume_from_the_last_id():
    servicer = ScriptedAlerts()
    async with alerts_server(servicer) as target, AsyncMeterClient(target, api_key="mk_a_b") as meter:
        stream = meter.alerts(heartbeat_interval=0.2)
        seen = []
        async with asyncio.timeout(10), contextlib.aclosing(aiter(stream)) as alerts:
            async for a in alerts:
                seen.append(a.id)
                if len(seen) == 5:
                    break
    assert seen == [1, 2, 3, 4, 5]  # nothing lost, nothing twice
    assert servicer.since_ids == [None, 2, 3]  # reconnected after the error and after the silence
    assert stream.last_id == 5 and stream.reconnects == 2
    assert servicer.keys == ["Bearer mk_a_b"] * 3


async def test_sync_alerts_resume_from_the_last_id():
    servicer = ScriptedAlerts()
    async with alerts_server(servicer) as target:

        def read_five():
            with MeterClient(target, api_key="mk_a_b") as meter:
                stream = meter.alerts(since_id=0, heartbeat_interval=0.2)
                ids = [a.id for a in itertools.islice(iter(stream), 5)]
                stream.close()
                return ids, stream

        ids, stream = await asyncio.wait_for(asyncio.to_thread(read_five), 10)
    assert ids == [1, 2, 3, 4, 5]
    assert servicer.since_ids == [0, 2, 3] and stream.reconnects == 2


async def test_alerts_raise_auth_errors_instead_of_reconnecting():
    servicer = ScriptedAlerts(deny=True)
    async with alerts_server(servicer) as target, AsyncMeterClient(target, api_key="mk_a_b") as meter:
        with pytest.raises(MeterAuthError, match="read"):
            async for _ in meter.alerts():
                pass
    assert servicer.since_ids == [None]


async def test_sync_events_yield_heartbeats_report_disconnects_and_follow_a_moved_cursor():
    """What `meter alerts tail` builds on: raw events, a hook before each reconnection, and a cursor
    the caller may move (tail resumes from its own resume point)."""
    servicer = ScriptedAlerts()
    async with alerts_server(servicer) as target:

        def follow():
            with MeterClient(target, api_key="mk_a_b", spool=False) as meter:
                stream = meter.alerts(since_id=0, heartbeat_interval=0.2)
                disconnects = []
                stream.on_disconnect = lambda error, delay: disconnects.append((error.code, delay))
                kinds = []
                for event in stream.events():
                    kinds.append("heartbeat" if event.HasField("heartbeat") else event.alert.id)
                    if event.HasField("alert") and event.alert.id == 2:
                        stream.last_id = 1  # resume from 1 instead: alert 2 comes again from connection 3
                    if len(kinds) == 6:
                        break
                stream.close()
                return kinds, disconnects

        kinds, disconnects = await asyncio.wait_for(asyncio.to_thread(follow), 10)
    assert kinds == ["heartbeat", 1, 2, 3, 4, 5]
    assert servicer.since_ids == [0, 1, 3]  # the moved cursor, then the last alert yielded
    assert [code for code, _ in disconnects] == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED]


def test_a_disconnect_hook_that_raises_stops_the_stream():
    async def scenario():
        async with alerts_server(ScriptedAlerts()) as target:

            def follow():
                with MeterClient(target, api_key="mk_a_b", spool=False) as meter:
                    stream = meter.alerts(since_id=0, heartbeat_interval=0.2)

                    def stop(error, delay):
                        raise error

                    stream.on_disconnect = stop
                    return [e.alert.id for e in stream.events() if e.HasField("alert")]

            return await asyncio.to_thread(follow)

    from meter import MeterUnavailable

    with pytest.raises(MeterUnavailable, match="replica shutting down"):
        asyncio.run(asyncio.wait_for(scenario(), 10))
