"""Cost breakdown and cache savings on RecordCall, ListCalls and GetUsage; service tiers, context
tiers and unit prices from the genai-prices catalog. A server with a fixed clock, so which price
versions are in force never depends on today's date."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, field_violations, record
from meterd.api.convert import ts
from meterd.domain import genai_catalog

# After genai-prices 0.2.3's OpenAI service-tier prices (2026-10-12); noon UTC.
NOW = dt.datetime(2026, 11, 16, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def stack(postgres):
    url = postgres.create_database()
    async with running_server(url, clock=FakeClock(NOW)) as server:
        tenant = await create_tenant(server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield meter_pb2_grpc.MeterStub(channel), tenant, channel, server
    postgres.drop_database(url)


def usage(**counts) -> common_pb2.Usage:
    return common_pb2.Usage(**counts)


def parts(b: common_pb2.CostBreakdown) -> tuple[int, ...]:
    return (b.input_nanos, b.output_nanos, b.cached_read_nanos, b.cache_write_nanos, b.requests_nanos,
            b.units_nanos, b.other_nanos)  # fmt: skip


async def test_record_call_returns_the_parts_and_cache_savings(stack):
    meter, tenant, _, _ = stack
    reply = await meter.RecordCall(
        record(
            model="gpt-5", cost_nanos=None, usage=usage(input_tokens=1000, output_tokens=500, cached_read_tokens=2000)
        ),
        metadata=tenant.auth("record"),
    )
    # gpt-5: $1.25 in, $10 out, $0.125 cached read per M. 1000*1.25e9/1e6 = 1,250,000;
    # 500*10e9/1e6 = 5,000,000; 2000*0.125e9/1e6 = 250,000. Savings: 2000*(1.25e9-0.125e9)/1e6.
    b = reply.cost_breakdown
    assert parts(b) == (1_250_000, 5_000_000, 250_000, 0, 0, 0, 0)
    assert reply.cost_nanos == sum(parts(b)) == 6_500_000
    assert b.cache_savings_nanos == 2_250_000
    again = await meter.RecordCall(
        record(reply.call_id, model="gpt-5", cost_nanos=None,
               usage=usage(input_tokens=1000, output_tokens=500, cached_read_tokens=2000)),
        metadata=tenant.auth("record"),
    )  # fmt: skip
    assert again.duplicate and again.cost_breakdown == b  # the first answer, parts included


async def test_client_costs_are_the_other_part(stack):
    meter, tenant, _, _ = stack
    reply = await meter.RecordCall(record(cost_nanos=123_456), metadata=tenant.auth("record"))
    assert reply.cost_source == common_pb2.COST_SOURCE_CLIENT
    assert parts(reply.cost_breakdown) == (0, 0, 0, 0, 0, 0, 123_456)


async def test_service_tier_selects_the_tier_price_and_falls_back_to_standard(stack):
    meter, tenant, _, _ = stack
    u = usage(input_tokens=1_000_000, output_tokens=1_000_000)
    standard = await meter.RecordCall(record(model="o3", cost_nanos=None, usage=u), metadata=tenant.auth("record"))
    flex = await meter.RecordCall(
        record(model="o3", cost_nanos=None, usage=u, service_tier="flex"), metadata=tenant.auth("record")
    )
    unknown = await meter.RecordCall(
        record(model="o3", cost_nanos=None, usage=u, service_tier="ultra"), metadata=tenant.auth("record")
    )
    # o3: $2 + $8 per M standard, $1 + $4 with flex processing.
    assert standard.cost_nanos == 10_000_000_000 and flex.cost_nanos == 5_000_000_000
    assert flex.price_id != standard.price_id
    assert (unknown.cost_nanos, unknown.price_id) == (standard.cost_nanos, standard.price_id)
    estimate = await meter.CheckQuota(
        check(mode="CHECK_ONLY", model="o3", service_tier="flex", estimate={"input_tokens": 1_000_000}),
        metadata=tenant.auth("check"),
    )
    assert estimate.estimated_cost_nanos == 1_000_000_000


async def test_context_tier_prices_long_prompts_higher(stack):
    meter, tenant, _, _ = stack
    short = await meter.RecordCall(
        record(provider="google", model="gemini-2.5-pro", cost_nanos=None, usage=usage(input_tokens=200_000)),
        metadata=tenant.auth("record"),
    )
    long = await meter.RecordCall(
        record(provider="google", model="gemini-2.5-pro", cost_nanos=None,
               usage=usage(input_tokens=150_000, cached_read_tokens=50_001, output_tokens=1000)),
        metadata=tenant.auth("record"),
    )  # fmt: skip
    # At most 200K prompt tokens: $1.25 in; above (cached reads count): $2.50 in, $0.25 cached, $15 out.
    assert short.cost_nanos == 250_000_000
    assert parts(long.cost_breakdown)[:3] == (375_000_000, 15_000_000, 12_500_250)


async def test_audio_seconds_are_the_units_of_a_transcription_model(stack):
    meter, tenant, _, _ = stack
    reply = await meter.RecordCall(
        record(model="whisper-1", cost_nanos=None, usage=usage(units=90)), metadata=tenant.auth("record")
    )
    # $0.006 per minute = $0.36 per hour; 90 s = 0.36e9 * 90 / 3600 = 9,000,000 nanos.
    assert reply.cost_nanos == reply.cost_breakdown.units_nanos == 9_000_000


async def test_list_calls_and_get_usage_carry_the_breakdown(stack):
    meter, _, _, server = stack
    tenant = await create_tenant(server)  # its own, so the sums below are only this test's calls
    calls = [
        record(model="gpt-5", cost_nanos=None, usage=usage(input_tokens=3000, output_tokens=7, cached_read_tokens=999),
               subject="u1"),
        record(model="claude-opus-4-5", provider="anthropic", cost_nanos=None,
               usage=usage(input_tokens=10, output_tokens=20, cached_read_tokens=30, cache_write_tokens=40), subject="u2"),
        record(cost_nanos=77, subject="u2"),
        record(model="no-such-model-x", cost_nanos=None, subject="u1"),
    ]  # fmt: skip
    replies = [await meter.RecordCall(c, metadata=tenant.auth("record")) for c in calls]
    listed = await meter.ListCalls(
        meter_pb2.ListCallsRequest(start=ts(NOW - dt.timedelta(hours=1)), end=ts(NOW + dt.timedelta(hours=1))),
        metadata=tenant.auth("read"),
    )
    by_id = {c.call_id: c for c in listed.calls}
    for reply in replies:
        assert by_id[reply.call_id].cost_breakdown == reply.cost_breakdown
        assert sum(parts(reply.cost_breakdown)) == reply.cost_nanos
    usage_reply = await meter.GetUsage(
        meter_pb2.GetUsageRequest(start=ts(NOW - dt.timedelta(hours=1)), end=ts(NOW + dt.timedelta(hours=1)),
                                  group_by=[meter_pb2.GROUP_BY_SUBJECT]),
        metadata=tenant.auth("read"),
    )  # fmt: skip
    totals = usage_reply.totals.cost_breakdown
    assert parts(totals) == tuple(sum(p) for p in zip(*(parts(r.cost_breakdown) for r in replies), strict=True))
    assert totals.cache_savings_nanos == sum(r.cost_breakdown.cache_savings_nanos for r in replies) > 0
    rows = {r.key.subject: r.stats for r in usage_reply.rows}
    assert sum(parts(rows["u2"].cost_breakdown)) == rows["u2"].cost_nanos == replies[1].cost_nanos + 77
    # By label (raw calls, not rollups): the same parts.
    by_label = await meter.GetUsage(
        meter_pb2.GetUsageRequest(start=ts(NOW - dt.timedelta(hours=1)), end=ts(NOW + dt.timedelta(hours=1)),
                                  group_by=[meter_pb2.GROUP_BY_LABEL], label_key="none"),
        metadata=tenant.auth("read"),
    )  # fmt: skip
    assert by_label.totals.cost_breakdown == totals


async def test_service_tier_is_bounded(stack):
    meter, tenant, _, _ = stack
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.RecordCall(record(service_tier="x" * 65), metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "service_tier" in field_violations(err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.CheckQuota(check(service_tier="x" * 65), metadata=tenant.auth("check"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_prices_names_the_catalog_version(stack):
    _, tenant, channel, _ = stack
    admin = admin_pb2_grpc.MeterAdminStub(channel)
    reply = await admin.ListPrices(
        admin_pb2.ListPricesRequest(provider="openai", model="o3", at=ts(NOW)), metadata=tenant.auth()
    )
    assert (reply.catalog_source, reply.catalog_version) == ("genai-prices", genai_catalog.installed_version())
    assert reply.HasField("catalog_imported_at")
    tiers = {p.service_tier for p in reply.prices}
    assert {"", "flex", "priority", "batch"} <= tiers
    assert all(p.source.startswith("genai-prices") and p.match_rule for p in reply.prices)
    gemini = await admin.ListPrices(
        admin_pb2.ListPricesRequest(provider="google", model="gemini-2.5-pro", at=ts(NOW)), metadata=tenant.auth()
    )
    [standard] = [p for p in gemini.prices if not p.service_tier]
    assert admin_pb2.PriceTier(rate="input", start_tokens=200_000, nanos_per_mtok=2_500_000_000) in standard.tiers


async def test_reprice_recomputes_the_breakdown_everywhere(stack):
    meter, _, channel, server = stack
    tenant = await create_tenant(server)
    admin = admin_pb2_grpc.MeterAdminStub(channel)
    u = usage(input_tokens=1000, output_tokens=100, cached_read_tokens=4000)
    first = await meter.RecordCall(record(model="gpt-5", cost_nanos=None, usage=u), metadata=tenant.auth("record"))
    # The tenant's own gpt-5 price from before the call: $2 in, $20 out, $1 cached read per M.
    own = admin_pb2.Price(provider="openai", model_pattern="gpt-5", effective_from=ts(NOW - dt.timedelta(days=1)),
                          input_nanos_per_mtok=2_000_000_000, output_nanos_per_mtok=20_000_000_000,
                          cached_read_nanos_per_mtok=1_000_000_000)  # fmt: skip
    await admin.SetPrice(admin_pb2.SetPriceRequest(price=own), metadata=tenant.auth())
    span = dict(start=ts(NOW - dt.timedelta(hours=1)), end=ts(NOW + dt.timedelta(hours=1)))
    reply = await admin.RepriceCalls(admin_pb2.RepriceCallsRequest(**span), metadata=tenant.auth())
    # 1000*2e9/1e6 + 100*20e9/1e6 + 4000*1e9/1e6 = 2,000,000 + 2,000,000 + 4,000,000; savings 4000*1e9/1e6.
    assert (reply.calls_changed, reply.cost_delta_nanos) == (1, 8_000_000 - first.cost_nanos)
    [call] = (await meter.ListCalls(meter_pb2.ListCallsRequest(**span), metadata=tenant.auth("read"))).calls
    assert parts(call.cost_breakdown) == (2_000_000, 2_000_000, 4_000_000, 0, 0, 0, 0) and call.cost_nanos == 8_000_000
    assert call.cost_breakdown.cache_savings_nanos == 4_000_000
    totals = (await meter.GetUsage(meter_pb2.GetUsageRequest(**span), metadata=tenant.auth("read"))).totals
    assert totals.cost_breakdown == call.cost_breakdown and totals.cost_nanos == 8_000_000
    again = await meter.RecordCall(
        record(first.call_id, model="gpt-5", cost_nanos=None, usage=u), metadata=tenant.auth("record")
    )
    assert again.duplicate and again.cost_breakdown == call.cost_breakdown  # the corrected first answer
