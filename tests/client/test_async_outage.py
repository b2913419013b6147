"""The async client through an outage: a real in-process server on a fixed port is stopped and started
again; the spool's background task delivers on its own and every record counts once."""

from __future__ import annotations

import socket

import pytest

from meter import AsyncMeterClient, FailurePolicy, MeterUnavailable, record_request
from meter_testing.fixtures import running_server
from meter_testing.waiting import eventually

from .sdk_responses import openai_chat

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_async_spool_delivers_in_the_background_after_a_restart(database_url, fresh_tenant):
    port = free_port()
    listen = f"127.0.0.1:{port}"
    meter = AsyncMeterClient(
        listen,
        api_key=fresh_tenant.keys["admin"],
        policy=FailurePolicy.allowance(calls_per_minute=3, tokens_per_minute=10_000),
        check_timeout=5.0,
        record_timeout=5.0,
        record_retries=1,
        retry_backoff=0.05,
        flush_interval=0.1,
        probe_interval=0.2,
    )
    ids = []
    try:
        async with running_server(database_url, listen=listen):
            async with meter.guard("async/u", "openai", "gpt-4.1", estimate_tokens=100) as call:
                call.record_openai(openai_chat(prompt=50, completion=5, cached=10))
            ids.append(call.call_id)
            assert not call.result.spooled and not call.check.degraded
        # Meter is down.
        for _ in range(3):
            async with meter.guard("async/u", "openai", "gpt-4.1", estimate_tokens=100) as call:
                call.record_openai(openai_chat(prompt=50, completion=5, cached=10))
            assert call.check.degraded and call.result.spooled
            ids.append(call.call_id)
        with pytest.raises(MeterUnavailable, match="allowance exhausted"):
            await meter.reserve("async/u", "openai", "gpt-4.1", estimate_tokens=100)
        batch = await meter.record_many(
            [record_request("async/u", "openai", "gpt-4.1", input_tokens=40, output_tokens=5)]
        )
        assert batch.spooled == 1
        ids.append(batch_id := meter.spool.head(10)[-1].call_id)
        assert len(meter.spool) == 4 and batch_id

        async with running_server(database_url, listen=listen):
            # No flush() call: the background task delivers.
            await eventually(lambda: not len(meter.spool), within=20, what="the spool delivered")
            totals = (await meter.usage(subject="async/u")).totals
            listed = await meter.list_calls(subject="async/u", page_size=100)
    finally:
        await meter.close(flush_timeout=0)
    assert sorted(c.call_id for c in listed.calls) == sorted(ids)
    assert (totals.calls, totals.input_tokens, totals.cached_read_tokens, totals.output_tokens) == (5, 200, 40, 25)
    assert meter.core.delivered_from_spool == 4
