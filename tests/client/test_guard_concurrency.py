"""A small LLM-backed service guards every (fake but typed) OpenAI call with Meter, under concurrency:
Meter's usage totals and limit counters must equal exactly what the service saw."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from meter import AsyncMeterClient, MeterClient, QuotaExceeded
from meter.v1 import common_pb2
from meter_testing.requests import limit

from .sdk_responses import openai_chat
from .settings import STRICT

ATTEMPTS = 60
MAX_REQUESTS = 45


class FakeAPIError(Exception):
    code = "server_error"
    status_code = 500


def fake_openai_create(i: int):
    """What openai_client.chat.completions.create would return for request i (every 6th one fails)."""
    if i % 6 == 0:
        raise FakeAPIError(f"upstream failed on request {i}")
    return openai_chat(prompt=100 + i, completion=20 + i % 7, cached=(i % 3) * 10, reasoning=i % 5)


@dataclass
class Ledger:
    """What the service itself observed, to compare with Meter."""

    ok: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    denied: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, i: int) -> None:
        with self.lock:
            getattr(self, kind).append(i)

    def expected(self) -> dict[str, int]:
        usages = [fake_openai_create(i).usage for i in self.ok]
        return {
            "calls": len(self.ok) + len(self.failed),
            "errors": len(self.failed),
            "input": sum(u.prompt_tokens - u.prompt_tokens_details.cached_tokens for u in usages),
            "cached": sum(u.prompt_tokens_details.cached_tokens for u in usages),
            "output": sum(u.completion_tokens for u in usages),
            "reasoning": sum(u.completion_tokens_details.reasoning_tokens for u in usages),
        }


class ChatService:
    """The service under test: one guarded LLM call per question."""

    def __init__(self, meter: MeterClient, ledger: Ledger) -> None:
        self.meter, self.ledger = meter, ledger

    def answer(self, i: int) -> None:
        try:
            with self.meter.guard(
                f"team:chat/user:{i % 4}",
                "openai",
                "gpt-4.1",
                operation="chat",
                estimate_tokens=1200,
                max_output_tokens=200,
            ) as call:
                assert not call.check.degraded
                call.record_openai(fake_openai_create(i))
            self.ledger.add("ok", i)
        except QuotaExceeded:
            self.ledger.add("denied", i)
        except FakeAPIError:
            self.ledger.add("failed", i)


class AsyncChatService(ChatService):
    async def answer(self, i: int) -> None:
        try:
            async with self.meter.guard(
                f"team:chat/user:{i % 4}",
                "openai",
                "gpt-4.1",
                operation="chat",
                estimate_tokens=1200,
                max_output_tokens=200,
            ) as call:
                await asyncio.sleep(0.001 * (i % 3))  # sleep-ok: the LLM "thinks"
                assert not call.check.degraded
                call.record_openai(fake_openai_create(i))
            self.ledger.add("ok", i)
        except QuotaExceeded:
            self.ledger.add("denied", i)
        except FakeAPIError:
            self.ledger.add("failed", i)


LIMITS = (
    limit("requests", "REQUESTS", "DAY", MAX_REQUESTS),
    limit("tokens", "TOTAL_TOKENS", "DAY", 10_000_000, action="WARN"),
    limit("failures", "FAILED_CALLS", "DAY", 1_000, action="WARN"),
)


async def assert_meter_matches(meter: AsyncMeterClient, ledger: Ledger) -> None:
    assert len(ledger.ok) + len(ledger.failed) == MAX_REQUESTS  # exactly the limit was admitted
    assert len(ledger.denied) == ATTEMPTS - MAX_REQUESTS
    want = ledger.expected()
    totals = (await meter.usage(subject_prefix="team:chat/")).totals
    assert (totals.calls, totals.errors) == (want["calls"], want["errors"])
    assert (totals.input_tokens, totals.cached_read_tokens, totals.output_tokens, totals.reasoning_tokens) == (
        want["input"],
        want["cached"],
        want["output"],
        want["reasoning"],
    )
    assert totals.expired_reservations == 0
    status = {s.limit_id: s for s in (await meter.check("team:chat/user:0", "openai", "gpt-4.1", requests=0)).limits}
    assert {k: (s.used, s.reserved) for k, s in status.items()} == {
        "requests": (MAX_REQUESTS, 0),
        "tokens": (want["input"] + want["cached"] + want["output"], 0),  # actuals replaced the estimates
        "failures": (want["errors"], 0),
    }
    assert status["requests"].metric == common_pb2.METRIC_REQUESTS


async def test_threads_using_the_sync_guard_are_counted_exactly(target, fresh_tenant, set_limits):
    await set_limits(fresh_tenant, *LIMITS)
    ledger = Ledger()

    def run() -> None:
        with MeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
            service = ChatService(meter, ledger)
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(service.answer, range(ATTEMPTS)))

    await asyncio.to_thread(run)
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        await assert_meter_matches(meter, ledger)


async def test_tasks_using_the_async_guard_are_counted_exactly(target, fresh_tenant, set_limits):
    await set_limits(fresh_tenant, *LIMITS)
    ledger = Ledger()
    async with AsyncMeterClient(target, api_key=fresh_tenant.keys["admin"], **STRICT) as meter:
        service = AsyncChatService(meter, ledger)
        await asyncio.gather(*(service.answer(i) for i in range(ATTEMPTS)))
        await assert_meter_matches(meter, ledger)
