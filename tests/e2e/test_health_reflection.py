"""Standard services: health (SERVING once migrated) and reflection (what grpcurl uses)."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_health_is_serving_for_the_server_and_each_service(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "meter.v1.Meter", "meter.v1.MeterAdmin"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services_and_describes_them(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="meter.v1.Meter"),
    ]
    replies = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"meter.v1.Meter", "meter.v1.MeterAdmin", "grpc.health.v1.Health"} <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto  # grpcurl can decode requests


async def test_prometheus_metrics_count_rpcs_by_code(database_url, tenant):
    import asyncio
    import urllib.request

    import grpc

    from meter.v1 import meter_pb2, meter_pb2_grpc
    from meter_testing.fixtures import running_server

    async with running_server(database_url, metrics_listen="127.0.0.1:0") as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = meter_pb2_grpc.MeterStub(channel)
            await stub.GetUsage(meter_pb2.GetUsageRequest(), metadata=tenant.auth("read"))
            try:
                await stub.GetUsage(meter_pb2.GetUsageRequest())
            except grpc.aio.AioRpcError:
                pass
        url = f"http://127.0.0.1:{server.metrics_http.server_port}/metrics"
        body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url).read())).decode()
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="GetUsage",grpc_service="meter.v1.Meter",'
        'grpc_type="unary"} 1.0' in body
    )
    assert 'grpc_code="Unauthenticated",grpc_method="GetUsage"' in body  # grpc-go's code names
    assert "meter_db_pool_size" in body
    assert "meter_alert_streams 0.0" in body and "meter_alerts_read_total" in body
    assert "meter_alert_evaluator_leader" in body
