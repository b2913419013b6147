"""The LiteLLM integration with the real `litellm` package: litellm.acompletion against a local fake
OpenAI-compatible server, reserved, recorded (plain and streamed) and denied through a real Meter."""

from __future__ import annotations

import os

import pytest

from meter import AsyncMeterClient, FailurePolicy
from meter.v1 import common_pb2
from meter_testing.fake_openai import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, fake_openai
from meter_testing.requests import limit
from meter_testing.waiting import eventually

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price map from GitHub
litellm = pytest.importorskip("litellm")
from meter.integrations.litellm import MeterCallback  # noqa: E402 - needs litellm

# litellm and its dependencies warn about their own internals (pydantic, deprecations): not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::ResourceWarning")


@pytest.fixture
async def hooked(meter_server, fresh_tenant, target, set_limits):
    """(tenant, callback, read client, fake server): litellm.callbacks holds the Meter callback."""
    _, key = await meter_server.keys.create(fresh_tenant.id, ["check", "record"], "litellm hook")
    # Closed and patient: on a loaded machine a slow answer must not turn into a fail-open allowance.
    options = {"policy": FailurePolicy.closed(), "check_timeout": 10.0}
    callback = MeterCallback(target, key, client_options=options)
    saved = list(litellm.callbacks)
    litellm.callbacks = [callback]
    reader = AsyncMeterClient(target, fresh_tenant.keys["read"])
    async with fake_openai() as fake:
        yield fresh_tenant, callback, reader, fake
    litellm.callbacks = saved
    await reader.close()
    await callback.client.close()


async def calls_of(reader: AsyncMeterClient, n: int, within: float = 15.0) -> list:
    """Polls ListCalls until n calls are recorded (LiteLLM runs success callbacks after returning)."""

    async def recorded() -> list | None:
        calls = list((await reader.list_calls(page_size=100)).calls)
        return calls if len(calls) >= n else None

    calls = await eventually(recorded, within=within, what=f"{n} calls recorded")
    return sorted(calls, key=lambda c: c.occurred_at.ToDatetime())


async def complete(fake, **kwargs):
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hello."}])
    return await litellm.acompletion(model="openai/gpt-4.1", api_base=fake.base_url, api_key="sk-fake", **kwargs)


async def test_calls_are_reserved_recorded_with_usage_and_denied_with_429(hooked, set_limits):
    tenant, callback, reader, fake = hooked
    await set_limits(tenant, limit("two-calls", "REQUESTS", "DAY", max=2))
    reply = await complete(fake, metadata={"meter_subject": "team:search/user:7"}, max_tokens=64)
    assert reply.choices[0].message.content == "Hello from the fake."
    streamed = await complete(fake, user="u-9", stream=True, stream_options={"include_usage": True})
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in streamed if chunk.choices])
    assert text == "Hello from the stream."
    with pytest.raises(litellm.RateLimitError) as denied:
        await complete(fake, metadata={"meter_subject": "team:search/user:7"})
    assert denied.value.status_code == 429 and "two-calls" in str(denied.value)
    assert len(fake.requests) == 2  # the denied call never reached the provider

    first, second = await calls_of(reader, 2)
    assert (first.subject, first.provider, first.model, first.operation) == (
        "team:search/user:7",
        "openai",
        "gpt-4.1",
        "chat",
    )
    assert first.outcome == common_pb2.OUTCOME_SUCCESS and first.reservation_id == first.call_id
    expected = common_pb2.Usage(input_tokens=PROMPT_TOKENS - CACHED_TOKENS, cached_read_tokens=CACHED_TOKENS,
                                output_tokens=COMPLETION_TOKENS, requests=1)  # fmt: skip
    assert first.usage == expected and second.usage == expected  # the stream's usage, from its last chunk
    assert second.subject == "user:u-9" and second.HasField("time_to_first_token")
    assert not callback._in_flight


async def test_a_failed_provider_call_is_recorded_as_an_error(hooked):
    tenant, callback, reader, fake = hooked
    with pytest.raises(litellm.BadRequestError):
        await litellm.acompletion(model="openai/broken", api_base=fake.base_url, api_key="sk-fake",
                                  messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    [call] = await calls_of(reader, 1)
    assert call.outcome == common_pb2.OUTCOME_ERROR and call.model == "broken"
    assert call.error_code.startswith("BadRequestError") and "400" in call.error_code
    assert call.usage.input_tokens == 0 and call.usage.output_tokens == 0


async def test_the_subject_comes_from_the_proxy_keys_team_user_or_alias():
    cb = MeterCallback("127.0.0.1:1", "mk_x")
    proxy = {"litellm_params": {"metadata": {"user_api_key_team_id": "t1", "user_api_key_user_id": "u1"}}}
    assert cb.subject(proxy) == "team:t1/user:u1"
    assert cb.subject({"metadata": {"user_api_key_team_id": "t1"}}) == "team:t1"
    assert (
        cb.subject({"metadata": {"user_api_key_alias": "billing-svc", "user_api_key_hash": "abcdef0123456789"}})
        == "key:billing-svc"
    )
    assert cb.subject({"litellm_metadata": {"user_api_key_hash": "abcdef0123456789"}}) == "key:abcdef012345"
    assert cb.subject({}) == "litellm"
    assert cb.provider_model({"model": "anthropic/claude-sonnet-4-5"}) == ("anthropic", "claude-sonnet-4-5")
