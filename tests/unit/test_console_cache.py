"""The console's GetUsage cache: answers reused within the TTL and per key, shared while in flight,
failures never kept."""

from __future__ import annotations

import asyncio

import pytest

from meterd.console.cache import CachingClient, UsageCache


class Reader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def usage(self, **kwargs):
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("down")
        return ("answer", self.calls, kwargs)


async def test_reuse_within_the_ttl_per_key_and_request():
    now = [0.0]
    cache = UsageCache(ttl=30, clock=lambda: now[0])
    reader = Reader()
    alice, bob = CachingClient(reader, cache, "mk_a_1"), CachingClient(reader, cache, "mk_b_2")
    first = await alice.usage(group_by=["model"])
    assert await alice.usage(group_by=["model"]) is first
    await bob.usage(group_by=["model"])  # another key: its own answer
    await alice.usage(group_by=["subject"])
    assert reader.calls == 3
    now[0] = 31
    assert await alice.usage(group_by=["model"]) is not first and reader.calls == 4


async def test_identical_requests_in_flight_share_one_rpc_and_failures_are_not_kept():
    cache = UsageCache()
    reader = Reader()
    reader.gate = asyncio.Event()
    client = CachingClient(reader, cache, "mk_a_1")
    tasks = [asyncio.ensure_future(client.usage(limit=5)) for _ in range(3)]
    await asyncio.sleep(0)  # sleep-ok: one loop turn starts the three tasks; the gate orders them
    reader.gate.set()
    results = await asyncio.gather(*tasks)
    assert reader.calls == 1 and results[0] is results[1] is results[2]
    reader.fail = True
    with pytest.raises(RuntimeError):
        await client.usage(limit=6)
    reader.fail = False
    assert (await client.usage(limit=6))[0] == "answer"


def test_other_methods_pass_through():
    class Other:
        def list_limits(self):
            return ["x"]

    assert CachingClient(Other(), UsageCache(), "k").list_limits() == ["x"]
