"""The servicers reach the aio server as generic handlers only (api/registration.py): registered
methods would make the server wait on one future per method for every RPC."""

from __future__ import annotations

import grpc

from meter.v1 import admin_pb2, admin_pb2_grpc, meter_pb2, meter_pb2_grpc
from meterd.api.registration import add_generic


class RecordingServer:
    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers) -> None:
        self.registered.append(service_name)


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method, self.invocation_metadata = method, ()


def test_every_method_is_served_by_a_generic_handler_and_none_is_registered():
    server = RecordingServer()
    add_generic(meter_pb2_grpc.add_MeterServicer_to_server, meter_pb2_grpc.MeterServicer(), server)
    add_generic(admin_pb2_grpc.add_MeterAdminServicer_to_server, admin_pb2_grpc.MeterAdminServicer(), server)
    assert server.registered == []
    methods = [f"/{s.full_name}/{m.name}" for d in (meter_pb2.DESCRIPTOR, admin_pb2.DESCRIPTOR)
               for s in d.services_by_name.values() for m in s.methods]  # fmt: skip
    assert len(methods) > 20
    for method in methods:
        assert any(h.service(Details(method)) is not None for h in server.generic), method
