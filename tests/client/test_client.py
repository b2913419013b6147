"""MeterClient and AsyncMeterClient against a real server: typed results, denials, errors, the guard
and the decorator."""

from __future__ import annotations

import asyncio

import pytest

from meter import (
    AsyncMeterClient,
    CheckResult,
    FailurePolicy,
    MeterAuthError,
    MeterClient,
    MeterError,
    MeterUnavailable,
    QuotaExceeded,
    RecordResult,
    record_request,
)
from meter.v1 import common_pb2, meter_pb2
from meter_testing.requests import limit

from .sdk_responses import anthropic_message, gemini_response, openai_chat
from .settings import STRICT


class FakeRateLimitError(Exception):
    """Shaped like the SDKs' API errors: a code and an HTTP status."""

    code = "rate_limit_exceeded"
    status_code = 429


async def test_async_check_reserve_record_usage_round_trip(target, fresh_tenant, set_limits):
    await set_limits(fresh_tenant, limit("req", "REQUESTS", "DAY", 2))
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        check = await meter.check("user:1", "openai", "gpt-4.1", estimate_tokens=100)
        assert isinstance(check, CheckResult) and check.allowed and not check.reservation_id
        assert check.limits[0].limit_id == "req" and check.limits[0].remaining == 2

        held = await meter.reserve("user:1", "openai", "gpt-4.1", estimate_tokens=100, max_output_tokens=50)
        assert held.allowed and held.reservation_id and held.limits[0].reserved == 1
        recorded = await meter.record(
            "user:1",
            "openai",
            "gpt-4.1",
            reservation_id=held.reservation_id,
            input_tokens=80,
            output_tokens=20,
            latency=0.25,
        )
        assert isinstance(recorded, RecordResult) and not recorded.duplicate and not recorded.spooled
        assert recorded.response.reservation_settled

        held = await meter.reserve("user:1", "openai", "gpt-4.1", max_output_tokens=100, ttl=30)
        extended = await meter.extend(held.reservation_id, max_output_tokens=1000, ttl=60)
        assert (
            extended.allowed
            and extended.reservation_expires_at.ToDatetime() > held.response.reservation_expires_at.ToDatetime()
        )
        with pytest.raises(QuotaExceeded) as denied:
            await meter.reserve("user:1", "openai", "gpt-4.1")
        assert denied.value.limit.limit_id == "req" and denied.value.limit.denied
        assert 0 < denied.value.retry_after <= 86_400
        # check() returns a denial rather than raising it.
        peek = await meter.check("user:1", "openai", "gpt-4.1")
        assert not peek.allowed and peek.denied_limits[0].limit_id == "req"

        assert await meter.release(held.reservation_id) and not await meter.release(held.reservation_id)
        await meter.reserve("user:1", "openai", "gpt-4.1")  # the released request fits again
        usage = await meter.usage(subject="user:1", group_by=["model"])
        assert isinstance(usage, meter_pb2.GetUsageResponse)
        assert (usage.totals.calls, usage.totals.input_tokens, usage.totals.output_tokens) == (1, 80, 20)
        assert usage.rows[0].key.model == "gpt-4.1"


async def test_the_same_call_id_twice_counts_once(target, fresh_tenant):
    request = record_request("user:2", "anthropic", "claude-sonnet-4-5", input_tokens=10, output_tokens=5)
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        first = await meter.record_request(request)
        again = await meter.record_request(request)  # a retry of a record whose answer was lost
        assert not first.duplicate and again.duplicate and again.call_id == request.call_id
        batch = await meter.record_many(
            [request, record_request("user:2", "anthropic", "claude-sonnet-4-5", input_tokens=1)]
        )
        assert (batch.recorded, batch.duplicates, batch.failed, batch.spooled) == (1, 1, 0, 0)
        assert (await meter.usage(subject="user:2")).totals.calls == 2


async def test_auth_errors_are_never_covered_by_fail_open(target, fresh_tenant):
    async with AsyncMeterClient(target, api_key="mk_nope_nope", policy=FailurePolicy.open()) as meter:
        with pytest.raises(MeterAuthError):
            await meter.check("user:3", "openai", "gpt-4.1")
        with pytest.raises(MeterAuthError):
            await meter.record("user:3", "openai", "gpt-4.1", input_tokens=1)
    # The read role may not record or check.
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["read"], **STRICT) as meter:
        with pytest.raises(MeterAuthError, match="PERMISSION_DENIED"):
            await meter.reserve("user:3", "openai", "gpt-4.1")
        with pytest.raises(MeterError, match="INVALID_ARGUMENT"):
            await meter.usage(group_by=["label"])  # no label_key


async def test_async_guard_records_success_error_and_skip(target, fresh_tenant, set_limits):
    await set_limits(fresh_tenant, limit("tokens", "TOTAL_TOKENS", "DAY", 1_000_000))
    meter = AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT)
    try:
        async with meter.guard(
            "user:4", "anthropic", "claude-sonnet-4-5", estimate_tokens=5000, labels={"f": "x"}
        ) as call:
            assert call.check.reservation_id == call.call_id
            call.record_anthropic(anthropic_message(input_tokens=30, output=200, cache_write=1000, cache_read=4000))
        assert call.result.response.reservation_settled

        with pytest.raises(FakeRateLimitError):  # the caller's exception always comes out
            async with meter.guard("user:4", "anthropic", "claude-sonnet-4-5", estimate_tokens=5000) as failed:
                raise FakeRateLimitError("slow down")
        assert failed.result is not None and not failed.result.spooled

        async with meter.guard("user:4", "anthropic", "claude-sonnet-4-5", estimate_tokens=5000) as skipped:
            skipped.skip()
        assert skipped.result is None

        usage = await meter.usage(subject="user:4")
        totals = usage.totals
        assert (totals.calls, totals.errors) == (2, 1)
        failures = (await meter.usage(subject="user:4", outcome="error", group_by=["error_code"])).rows
        assert [(r.key.error_code, r.stats.calls, r.stats.errors) for r in failures] == [
            ("FakeRateLimitError:rate_limit_exceeded", 1, 1)
        ]
        assert (await meter.usage(subject="user:4", outcome="success")).totals.calls == 1
        with pytest.raises(ValueError, match="unknown outcome"):
            await meter.usage(outcome="maybe")
        assert (totals.input_tokens, totals.output_tokens, totals.cached_read_tokens, totals.cache_write_tokens) == (
            30,
            200,
            4000,
            1000,
        )
        calls = await meter.list_calls(subject="user:4", outcome=common_pb2.OUTCOME_ERROR)
        error = calls.calls[0]
        assert error.error_code == "FakeRateLimitError:rate_limit_exceeded" and error.error_message == "slow down"
        assert error.latency.ToTimedelta().total_seconds() >= 0
        # Settled, failed (charged zero) and released: nothing stays reserved, only the actual is used.
        status = (await meter.check("user:4", "anthropic", "claude-sonnet-4-5")).limits[0]
        assert (status.used, status.reserved) == (5230, 0)
    finally:
        await meter.close()


async def test_sync_client_from_threads(target, fresh_tenant, set_limits):
    await set_limits(fresh_tenant, limit("req", "REQUESTS", "DAY", 3))

    def work():
        with MeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
            with meter.guard("user:5", "openai", "gpt-4.1", estimate_tokens=1200) as call:
                call.record_openai(openai_chat(prompt=1000, completion=100, cached=400, reasoning=30))
            assert call.result.response.reservation_settled

            @meter.metered(lambda prompt, user: user, "google", "gemini-2.5-pro", estimate_tokens=10)
            def ask(prompt: str, user: str):
                return gemini_response(prompt=100, candidates=20, cached=60, thoughts=10)

            assert ask("hi", user="user:5").usage_metadata.prompt_token_count == 100
            with pytest.raises(QuotaExceeded) as denied:
                for _ in range(2):
                    ask("again", user="user:5")
            assert denied.value.limit.limit_id == "req"
            return meter.usage(subject="user:5", group_by=["provider"]).rows

    rows = {row.key.provider: row.stats for row in await asyncio.to_thread(work)}
    assert (rows["openai"].input_tokens, rows["openai"].cached_read_tokens, rows["openai"].reasoning_tokens) == (
        600,
        400,
        30,
    )
    assert (rows["google"].calls, rows["google"].input_tokens, rows["google"].output_tokens) == (
        2,
        80,
        60,
    )  # 2 calls of 40 uncached in, 20 + 10 thoughts out


async def test_async_decorator_and_type_mismatch(target, fresh_tenant):
    meter = AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT)
    try:

        @meter.metered("user:6", "openai", "gpt-4.1", usage="openai", estimate_tokens=10)
        async def ask():
            return openai_chat(prompt=10, completion=5)

        await ask()
        assert (await meter.usage(subject="user:6")).totals.output_tokens == 5
        with pytest.raises(TypeError, match="needs MeterClient"):
            meter.metered("u", "openai", "gpt-4.1")(lambda: None)
    finally:
        await meter.close()


async def test_unreachable_meter_follows_the_failure_policy(dead_target):
    fast = {"check_timeout": 0.3, "record_retries": 1, "retry_backoff": 0.01, "probe_interval": 0}
    async with AsyncMeterClient(dead_target, api_key="mk_x_y", policy=FailurePolicy.open(), **fast) as meter:
        result = await meter.reserve("user:7", "openai", "gpt-4.1", estimate_tokens=10)
        assert result.allowed and result.degraded and not result.reservation_id
    async with AsyncMeterClient(dead_target, api_key="mk_x_y", policy=FailurePolicy.closed(), **fast) as meter:
        with pytest.raises(MeterUnavailable, match="fail-closed"):
            await meter.check("user:7", "openai", "gpt-4.1")
    policy = FailurePolicy.allowance(calls_per_minute=3, tokens_per_minute=250)
    meter = AsyncMeterClient(dead_target, api_key="mk_x_y", policy=policy, spool=False, **fast)
    try:
        for _ in range(2):
            assert (await meter.reserve("user:7", "openai", "gpt-4.1", estimate_tokens=100)).degraded
        with pytest.raises(MeterUnavailable, match="allowance exhausted"):  # tokens: 200 + 100 > 250
            await meter.reserve("user:7", "openai", "gpt-4.1", estimate_tokens=100)
        assert (await meter.reserve("user:7", "openai", "gpt-4.1", estimate_tokens=50)).degraded
        with pytest.raises(MeterUnavailable, match="allowance exhausted"):  # calls: 4 > 3
            await meter.reserve("user:7", "openai", "gpt-4.1")
        with pytest.raises(MeterUnavailable):  # no spool: the record fails after its retries
            await meter.record("user:7", "openai", "gpt-4.1", input_tokens=1)
    finally:
        await meter.close(flush_timeout=0)


async def test_record_many_sends_chunks_of_a_thousand_and_reports_per_item(target, fresh_tenant):
    requests = [record_request("user:8", "openai", "gpt-4.1", input_tokens=i % 10) for i in range(1001)]
    requests.append(record_request("", "openai", "gpt-4.1"))  # no subject: this item fails alone
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["record"], **STRICT) as meter:
        batch = await meter.record_many(requests)
    # On a loaded machine a chunk can outlive its deadline after committing: the retry then reports
    # those items as duplicates, and they still count once.
    assert (batch.recorded + batch.duplicates, batch.failed, batch.spooled) == (1001, 1, 0)
    assert [r.index for r in batch.results] == list(range(1002))
    assert batch.results[1001].error_code == "INVALID_ARGUMENT" and "subject" in batch.results[1001].error_message
    assert batch.results[1000].response.call_id == requests[1000].call_id
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["read"], **STRICT) as reader:
        assert (await reader.usage(subject="user:8")).totals.calls == 1001


async def test_service_tier_reaches_the_server(target, fresh_tenant):
    # o3 with OpenAI's flex processing costs half the standard price (genai-prices) when the
    # catalog has the tier at the call's time; either way the record carries the tier.
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        request = record_request("user:tier", "openai", "o3", input_tokens=1000, service_tier="flex")
        assert request.service_tier == "flex"
        flex = await meter.record_request(request)
        standard = await meter.record("user:tier", "openai", "o3", input_tokens=1000)
        assert flex.cost_nanos <= standard.cost_nanos
        check = await meter.check("user:tier", "openai", "o3", estimate_tokens=1000, service_tier="flex")
        assert check.allowed and check.estimated_cost_nanos == flex.cost_nanos


async def test_close_returns_the_records_left_in_the_spool(dead_target):
    fast = {"record_retries": 1, "retry_backoff": 0.01, "probe_interval": 0}
    meter = AsyncMeterClient(dead_target, api_key="mk_x_y", **fast)
    for _ in range(2):
        assert (await meter.record("user:7", "openai", "gpt-4.1", input_tokens=1)).spooled
    assert await meter.close(flush_timeout=0) == 2
    assert await meter.close() == 0
    sync = MeterClient(dead_target, api_key="mk_x_y", **fast)
    assert sync.record("user:7", "openai", "gpt-4.1", input_tokens=1).spooled
    assert sync.close(flush_timeout=0.05) == 1


async def test_a_stream_without_usage_is_recorded_as_a_success_at_the_estimate(
    target, fresh_tenant, set_limits, caplog
):
    from meter import guard

    from .sdk_responses import openai_final_chunk_without_usage

    guard._WARNED.clear()
    await set_limits(fresh_tenant, limit("tokens", "INPUT_TOKENS", "DAY", 1_000_000))
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        calls = []
        for _ in range(2):
            async with meter.guard("user:stream", "openai", "gpt-4.1", estimate_tokens=300) as call:
                call.record_openai(openai_final_chunk_without_usage())  # the caller's code goes on
            calls.append(call)
        listed = await meter.list_calls(subject="user:stream")
        usage = await meter.usage(subject="user:stream")
    assert all(c.result is not None and c.record_error is None and "include_usage" in c.usage_unknown for c in calls)
    assert {c.outcome for c in listed.calls} == {common_pb2.OUTCOME_SUCCESS}
    assert all(c.metadata["meter.usage"] == "unknown" for c in listed.calls)
    # Charged at the reservation's estimate, not $0 and not an error.
    assert usage.totals.calls == 2 and usage.totals.errors == 0 and usage.totals.input_tokens == 600
    warnings = [r for r in caplog.records if r.name == "meter.guard" and "usage unknown" in r.getMessage()]
    assert len(warnings) == 1 and "include_usage" in warnings[0].getMessage()  # once per kind of response
