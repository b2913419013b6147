"""The Python clients over TLS and mutual TLS with real certificates: `tls=meter.TLS(...)` with a CA
file and a client certificate, a name override for dialling an IP, and `credentials=` of your own."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from meter import TLS, AsyncMeterClient, MeterClient, MeterUnavailable
from meter_testing.certs import Pki, channel_credentials, mutual_tls
from meter_testing.fixtures import create_tenant, running_server

from .settings import STRICT


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki-client"))


@pytest.fixture(scope="module")
async def mtls(database_url, pki):
    """(target, tenant, client certificate) of a mutual-TLS server whose certificate names only meter.test."""
    settings, client = mutual_tls(pki, "app", "meter.test")
    async with running_server(database_url, **settings) as server:
        yield f"127.0.0.1:{server.port}", await create_tenant(server), client


async def test_async_client_over_mutual_tls(mtls, pki):
    target, tenant, cert = mtls
    tls = TLS(ca_file=pki.ca(), cert_file=cert.cert, key_file=cert.key, server_name="meter.test")
    async with AsyncMeterClient(target, api_key=tenant.keys["admin"], tls=tls, **STRICT) as meter:
        assert (await meter.check("user:tls", "openai", "gpt-4.1", estimate_tokens=10)).allowed
        await meter.record("user:tls", "openai", "gpt-4.1", input_tokens=10, output_tokens=5)
        assert (await meter.usage()).totals.calls >= 1


async def test_sync_client_over_mutual_tls_and_with_own_credentials(mtls, pki):
    target, tenant, cert = mtls

    def run():
        tls = TLS(ca_file=str(pki.ca()), cert_file=str(cert.cert), key_file=str(cert.key), server_name="meter.test")
        with MeterClient(target, api_key=tenant.keys["admin"], tls=tls, **STRICT) as meter:
            assert meter.check("user:tls", "openai", "gpt-4.1", estimate_tokens=10).allowed
        own = channel_credentials(pki.ca(), cert)
        options = {"policy": STRICT["policy"], "check_timeout": 10.0}
        with MeterClient(target, api_key=tenant.keys["admin"], credentials=own, **options) as meter:
            # credentials= takes no name override: the certificate names meter.test, not 127.0.0.1
            with pytest.raises(MeterUnavailable):
                meter.check("user:tls", "openai", "gpt-4.1", estimate_tokens=10)

    await asyncio.to_thread(run)


async def test_a_client_without_its_certificate_is_refused(mtls, pki):
    target, tenant, _ = mtls
    tls = TLS(ca_file=pki.ca(), server_name="meter.test")
    async with AsyncMeterClient(target, api_key=tenant.keys["admin"], tls=tls, **STRICT) as meter:
        with pytest.raises(MeterUnavailable) as err:
            await meter.check("user:tls", "openai", "gpt-4.1", estimate_tokens=10)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
