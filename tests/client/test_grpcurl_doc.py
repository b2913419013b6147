"""docs/grpcurl.md documents every RPC of Meter and MeterAdmin, and each documented request, run in
the document's order against a real server, is accepted."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
from google.protobuf import json_format

from meter.v1 import admin_pb2, meter_pb2

DOC = Path(__file__).resolve().parents[2] / "docs" / "grpcurl.md"
COMMAND = re.compile(
    r"""grpcurl "\$\{AUTH\[@\]\}"(?:\s+-d\s+(?:'(?P<sq>[^']*)'|"(?P<dq>(?:[^"\\]|\\.)*)"))?"""
    r"""\s*(?:\\\n\s*)?localhost:50051 meter\.v1\.(?P<service>\w+)/(?P<method>\w+)"""
)
# Built elsewhere right now: these may still answer UNIMPLEMENTED.
NOT_YET = {"SetAlertRule", "ListAlertRules", "DeleteAlertRule", "StreamAlerts"}
MODULES = {"Meter": meter_pb2, "MeterAdmin": admin_pb2}


def documented() -> list[tuple[str, str, str]]:
    out = []
    for m in COMMAND.finditer(DOC.read_text()):
        body = m["sq"] if m["sq"] is not None else (m["dq"] or "").replace('\\"', '"')
        out.append((m["service"], m["method"], body or "{}"))
    return out


def test_every_rpc_is_documented():
    seen = {(service, method) for service, method, _ in documented()}
    for service, module in MODULES.items():
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            assert (service, method.name) in seen, f"docs/grpcurl.md lacks meter.v1.{service}/{method.name}"


async def test_documented_requests_are_accepted(channel, fresh_tenant):
    auth = fresh_tenant.auth("admin")
    answers: dict[str, object] = {}
    for service, method, body in documented():
        module = MODULES[service]
        desc = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        request_cls = getattr(module, desc.input_type.name)
        response_cls = getattr(module, desc.output_type.name)
        if "$KEY_ID" in body:
            body = body.replace("$KEY_ID", answers["CreateApiKey"].key.id)
        request = json_format.Parse(body, request_cls())
        path = f"/meter.v1.{service}/{method}"
        try:
            if desc.server_streaming:
                call = channel.unary_stream(path, request_cls.SerializeToString, response_cls.FromString)
                async for _ in call(request, metadata=auth, timeout=0.5):
                    pass
            else:
                call = channel.unary_unary(path, request_cls.SerializeToString, response_cls.FromString)
                answers[method] = await call(request, metadata=auth)
        except grpc.aio.AioRpcError as err:
            allowed = {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED} if method in NOT_YET else set()
            assert err.code() in allowed, f"{service}/{method} {body}: {err.code().name} {err.details()}"
    assert answers["RecordCall"].reservation_settled
    assert answers["ExtendReservation"].allowed
    assert answers["ReleaseReservation"].released
    assert (answers["RecordCalls"].recorded, answers["RecordCalls"].failed) == (2, 0)
    assert answers["GetUsage"].rows[0].key.label_value == ""  # the label query of errors: call-0003 has none
    assert answers["RevokeApiKey"].key.HasField("revoke_time")


async def test_documented_buf_curl_call_over_mutual_tls(database_url, tmp_path):
    """The doc's `buf curl` array and first call, run as written (files and host substituted) against
    a server that requires client certificates."""
    import asyncio
    import os
    import shlex
    import shutil

    import pytest

    from meter_testing.certs import Pki, mutual_tls
    from meter_testing.fixtures import create_tenant, running_server

    npx = shutil.which("npx")
    if npx is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("npx is required in CI (it runs buf for make lint too)")
        pytest.skip("npx not installed")
    text = DOC.read_text()
    buf = re.search(r"^BUF=\((.*)\)$", text, re.M).group(1)
    call = re.search(r'^"\$\{BUF\[@\]\}" (.*)$', text, re.M).group(1)
    pki = Pki(tmp_path)
    settings, client = mutual_tls(pki, "buf", "meter.internal")
    async with running_server(database_url, **settings) as server:
        tenant = await create_tenant(server)
        files = {"ca.pem": str(pki.ca()), "client.pem": str(client.cert), "client.key": str(client.key)}
        argv = [files.get(a, a) for a in shlex.split(buf)]
        argv += [
            a.replace("$KEY", tenant.keys["admin"]).replace("meter.internal:50051", f"127.0.0.1:{server.port}")
            for a in shlex.split(call)
        ]
        argv[-1:-1] = ["--servername", "meter.internal"]  # the name the certificate carries
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    keys = json_format.Parse(out.decode(), admin_pb2.ListApiKeysResponse()).keys
    assert len(keys) == 4  # the tenant's four keys, read over mutual TLS
