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


def limit(id: str, metric: str = "REQUESTS", window: str = "MINUTE", max: int = 10, seconds: int = 0, **fields):
    """An admin_pb2.Limit from short names: limit("daily", "COST_NANOS", "DAY", 5_000_000_000)."""
    from meter.v1 import admin_pb2

    selector = fields.pop("selector", {})
    return admin_pb2.Limit(
        id=id,
        metric=common_pb2.Metric.Value(f"METRIC_{metric}"),
        window=common_pb2.Window(
            kind=common_pb2.WindowKind.Value(f"WINDOW_KIND_{window}"),
            duration={"seconds": seconds} if seconds else None,
        ),
        max=max,
        selector=common_pb2.Selector(**selector),
        partition=common_pb2.Partition.Value(f"PARTITION_{fields.pop('partition', 'SHARED')}"),
        action=common_pb2.LimitAction.Value(f"LIMIT_ACTION_{fields.pop('action', 'DENY')}"),
        **fields,
    )


def check(mode: str = "RESERVE", subject: str = "team:search/user:42", **fields) -> meter_pb2.CheckQuotaRequest:
    estimate = fields.pop("estimate", {})
    return meter_pb2.CheckQuotaRequest(
        subject=subject,
        provider=fields.pop("provider", "openai"),
        model=fields.pop("model", "gpt-4.1"),
        operation=fields.pop("operation", "chat"),
        estimate=meter_pb2.Estimate(**estimate),
        mode=meter_pb2.CheckMode.Value(f"CHECK_MODE_{mode}"),
        **fields,
    )
