"""Request builders and status helpers shared by tests."""

from __future__ import annotations

import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from meter.v1 import common_pb2, meter_pb2


def record(call_id: str | None = None, **overrides) -> meter_pb2.RecordCallRequest:
    fields = dict(
        call_id=call_id or uuid.uuid4().hex,
        subject="team:search/user:42",
        provider="openai",
        model="gpt-4.1",
        operation="chat",
        usage=common_pb2.Usage(input_tokens=1000, output_tokens=500, cached_read_tokens=200),
        cost_nanos=60_000_000,
    )
    fields.update(overrides)
    return meter_pb2.RecordCallRequest(**fields)


def field_violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    out = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out
