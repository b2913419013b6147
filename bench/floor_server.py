"""The floor under Meter's CheckQuota: the generated Meter servicer on the same event loop and options,
decoding each CheckQuotaRequest, reading its bearer token and answering a canned three-limit
CheckQuotaResponse (encoded anew each time), with no interceptor, validation, batching or database.

What separates echo from this is what any Python server of these messages pays per RPC (protobuf in
and out, the generated stubs, metadata); what separates this from Meter is Meter's own work.
Prints its port, serves until terminated.
"""

from __future__ import annotations

import grpc
from echo_server import run  # run as a script from bench/, like the echo server
from google.protobuf import timestamp_pb2

from meter.v1 import common_pb2, meter_pb2, meter_pb2_grpc
from meterd.api.registration import add_generic


def _canned() -> meter_pb2.CheckQuotaResponse:
    at = timestamp_pb2.Timestamp(seconds=1_800_000_000)
    status = common_pb2.LimitStatus(
        limit_id="per-user-minute", metric=common_pb2.METRIC_REQUESTS, action=common_pb2.LIMIT_ACTION_DENY,
        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_MINUTE), partition="user:1", max=10**12,
        used=12, reserved=3, remaining=10**12 - 15, window_start=at, reset_at=at, percent_used=1e-9,
    )  # fmt: skip
    return meter_pb2.CheckQuotaResponse(
        allowed=True, limits=[status] * 3, estimated_cost_nanos=4_800_000, reservation_id="f" * 32,
        reservation_expires_at=at, evaluated_at=at,
    )  # fmt: skip


class FloorMeter(meter_pb2_grpc.MeterServicer):
    def __init__(self) -> None:
        self.reply = _canned()

    async def CheckQuota(self, request, context):
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and not value.startswith("Bearer "):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a bearer token")
        reply = meter_pb2.CheckQuotaResponse()
        reply.CopyFrom(self.reply)  # a new message each time, as a real answer is
        reply.allowed = request.estimate.input_tokens >= 0
        return reply


if __name__ == "__main__":
    run(lambda server: add_generic(meter_pb2_grpc.add_MeterServicer_to_server, FloorMeter(), server))  # as Meter does
