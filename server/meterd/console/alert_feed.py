"""The live alert feed: StreamAlerts relayed to the browser as server-sent events.

Alerts go out as `event: alert` with the alert as JSON. Heartbeats go out as `event: heartbeat`
carrying `id: <resume_id>`, so a reconnecting EventSource sends Last-Event-ID = the last safe resume
point (alert ids can arrive out of order, so the last alert's id is not one); the page drops ids it
has already shown. Heartbeats also make a closed browser tab noticed within one interval."""

from __future__ import annotations

import json

import grpc

from meter import builders
from meter.v1 import common_pb2
from meterd.console import fmt

HEARTBEAT_SECONDS = 5.0


def alert_json(alert) -> str:
    return json.dumps(
        {
            "id": alert.id,
            "kind": common_pb2.AlertKind.Name(alert.kind).removeprefix("ALERT_KIND_").lower(),
            "severity": common_pb2.Severity.Name(alert.severity).removeprefix("SEVERITY_").lower(),
            "subject": alert.subject,
            "limit_id": alert.limit_id,
            "message": alert.message,
            "created_at": fmt.iso(alert.created_at),
            "created_utc": fmt.utc(alert.created_at),
        }
    )


async def alert_events(client, since_id: int | None):
    request = builders.alerts_request(since_id, common_pb2.SEVERITY_UNSPECIFIED, (), "", HEARTBEAT_SECONDS)
    call = client.stub.StreamAlerts(request, metadata=client.core.metadata)
    yield "retry: 2000\n\n"
    try:
        async for event in call:
            if event.HasField("alert"):
                yield f"event: alert\ndata: {alert_json(event.alert)}\n\n"
            else:
                yield f"event: heartbeat\nid: {event.heartbeat.resume_id}\ndata: {{}}\n\n"
    except grpc.RpcError as err:
        # The browser reconnects by itself (after `retry`) and resumes from the last heartbeat.
        yield f"event: failure\ndata: {json.dumps({'message': f'{err.code().name}: {err.details()}'[:300]})}\n\n"
    finally:
        call.cancel()
