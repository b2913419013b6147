"""A group-committed batch never shares a failure: random batches of valid and hostile requests,
sent beneath the API (so values the API would refuse still reach the batch), on real PostgreSQL.

Every valid request is recorded (or reserved) exactly once, every hostile one that fails gets
INVALID_ARGUMENT alone, and the counters equal the sum of what succeeded."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from meter_testing.fixtures import running_server
from meterd.domain.calls import CallInput, Dimensions
from meterd.domain.errors import Internal, InvalidArgument
from meterd.domain.keys import Principal
from meterd.domain.quota import Estimate
from meterd.service.metering import RecordOutcome
from meterd.store.records import RecordStore

INT64_MAX = 2**63 - 1
# overflow: a retry count beyond the column's integer (always fails); nul: PostgreSQL text cannot
# hold it (always fails); huge: 2^62 output tokens pass alone, overflow an hourly rollup with another.
KINDS = st.sampled_from(["valid", "valid", "valid", "valid", "overflow", "nul", "huge"])


@pytest.fixture(scope="module")
async def iso(postgres):
    url = postgres.create_database()
    try:
        async with running_server(url) as server:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield server, admin_pb2_grpc.MeterAdminStub(channel), url
    finally:
        postgres.drop_database(url)


async def new_tenant(server, admin, *limits) -> Principal:
    tenant = f"iso-{uuid.uuid4().hex[:8]}"
    row, key = await server.keys.create(tenant, ["admin"])
    for lim in limits:
        await admin.SetLimit(admin_pb2.SetLimitRequest(limit=lim), metadata=(("authorization", f"Bearer {key}"),))
    return Principal(tenant, row.id, frozenset({"admin"}))


def call(kind: str, tokens: int) -> CallInput:
    subject = "user:\x00evil" if kind == "nul" else "user:1"
    return CallInput(
        call_id=uuid.uuid4().hex, reservation_id="", dims=Dimensions(subject, "openai", "gpt-4.1", "chat", {}),
        usage_given=True, input_tokens=tokens, output_tokens=2**62 if kind == "huge" else tokens,
        cached_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, requests=1, units=0, latency_us=1000,
        ttft_us=None, retry_count=2**40 if kind == "overflow" else 0, success=True, error_code="", error_message="", occurred_at=None, client_cost_nanos=0,
        metadata={},
    )  # fmt: skip


def tokens_limit() -> admin_pb2.Limit:
    return admin_pb2.Limit(
        id="tokens", metric=common_pb2.METRIC_INPUT_TOKENS, max=10**18, action=common_pb2.LIMIT_ACTION_WARN,
        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY),
    )  # fmt: skip


async def counter_used(url: str, tenant: str, column: str = "used") -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(f"SELECT coalesce(sum({column}), 0) FROM counters WHERE tenant_id = %s", (tenant,))
        return int((await cur.fetchone())[0])


async def recorded_ids(url: str, tenant: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT call_id FROM calls WHERE tenant_id = %s", (tenant,))
        return [r[0] for r in await cur.fetchall()]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.lists(st.tuples(KINDS, st.integers(1, 10**6)), min_size=1, max_size=40),
    grouped=st.booleans(),
)
async def test_every_valid_record_lands_once_whatever_shares_its_batch(iso, batch, grouped):
    server, admin, url = iso
    principal = await new_tenant(server, admin, tokens_limit())
    calls = [call(kind, tokens) for kind, tokens in batch]
    isolated_before = server.metering.batcher.isolated
    if grouped:  # one RecordCalls-like submission
        answers = await server.metering.record_many(principal, calls)
    else:  # concurrent RecordCall RPCs
        answers = await asyncio.gather(*(server.metering.record(principal, c) for c in calls), return_exceptions=True)
    ok = []
    for (kind, _), c, answer in zip(batch, calls, answers, strict=True):
        if kind == "valid":
            assert isinstance(answer, RecordOutcome) and not answer.result.duplicate, answer
        elif kind in ("overflow", "nul"):
            assert isinstance(answer, InvalidArgument), answer
            assert len(str(answer)) < 400
        else:
            assert isinstance(answer, RecordOutcome | InvalidArgument), answer
        if isinstance(answer, RecordOutcome):
            ok.append(c)
    if grouped and len(batch) > 1 and {"overflow", "nul"} & {kind for kind, _ in batch}:
        assert server.metering.batcher.isolated > isolated_before  # one transaction failed and was split
    ids = await recorded_ids(url, principal.tenant_id)
    assert sorted(ids) == sorted(c.call_id for c in ok)  # each exactly once; nothing of a failure
    expected = sum(c.input_tokens + c.cached_read_tokens + c.cache_write_tokens for c in ok)
    assert await counter_used(url, principal.tenant_id) == expected


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["valid", "valid", "valid", "hostile"]), min_size=1, max_size=40))
async def test_reservations_stay_exact_when_a_hostile_request_shares_their_batch(iso, kinds):
    server, admin, url = iso
    cap = 10
    principal = await new_tenant(
        server,
        admin,
        admin_pb2.Limit(id="req", metric=common_pb2.METRIC_REQUESTS, max=cap,
                        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY)),
        admin_pb2.Limit(id="cost", metric=common_pb2.METRIC_COST_NANOS, max=10**18,
                        window=common_pb2.Window(kind=common_pb2.WINDOW_KIND_DAY)),
    )  # fmt: skip

    async def reserve(kind: str):
        # A NUL in a text parameter: refused by psycopg itself, failing the whole batch's statement.
        dims = Dimensions("user:\x00" if kind == "hostile" else "user:1", "openai", "gpt-4.1", "chat", {})
        estimate = Estimate(input_tokens=10, cost_nanos=1000)
        return await server.quota.check(principal, dims, estimate, reserve=True, reservation_id="", ttl=None)

    answers = await asyncio.gather(*(reserve(k) for k in kinds), return_exceptions=True)
    assert server.quota.batcher.pending() == 0
    admitted = 0
    for kind, answer in zip(kinds, answers, strict=True):
        if kind == "hostile":
            assert isinstance(answer, InvalidArgument), answer
        else:
            assert not isinstance(answer, BaseException), answer
            admitted += answer.allowed
    assert admitted == min(cap, kinds.count("valid"))  # never over, never falsely denied
    # Counters hold exactly the admitted reservations: the requests limit's and the cost limit's.
    assert await counter_used(url, principal.tenant_id, "reserved") == admitted + 1000 * admitted


class FaultyRecordStore(RecordStore):
    """The real store on the real database, with one injected server bug: any batch holding a call
    whose error_code is "boom" raises a plain Python error (not about values, so not a MeterError)."""

    async def record_batch(self, items):
        if any(i.call.error_code == "boom" for i in items):
            raise RuntimeError("an injected bug " + "x" * 5000)
        return await super().record_batch(items)


async def test_a_culprit_that_is_a_server_bug_is_internal_for_it_alone(iso, monkeypatch):
    """An unexpected error that is not about values reaches only the request that carries it, as a
    bounded INTERNAL of its own; its batch-mates commit."""
    server, admin, url = iso
    principal = await new_tenant(server, admin)
    monkeypatch.setattr(server.metering, "store", FaultyRecordStore(server.db))
    calls = [call("valid", 5) for _ in range(6)]
    calls[3] = CallInput(**{**calls[3].__dict__, "error_code": "boom"})
    answers = await asyncio.gather(*(server.metering.record(principal, c) for c in calls), return_exceptions=True)
    assert isinstance(answers[3], Internal), answers[3]
    assert "RuntimeError" in str(answers[3]) and "xxx" not in str(answers[3])  # the bug's text stays in the log
    assert all(isinstance(a, RecordOutcome) for i, a in enumerate(answers) if i != 3)
    assert sorted(await recorded_ids(url, principal.tenant_id)) == sorted(
        c.call_id for i, c in enumerate(calls) if i != 3
    )


async def test_over_the_api_a_server_bug_in_one_item_of_record_calls_is_that_items_result(iso, monkeypatch):
    """RecordCalls with a server bug in one item: the RPC is OK, the item's result says INTERNAL with a
    bounded message, every other item is recorded once; RecordCall of the same call answers INTERNAL."""
    from meter.v1 import meter_pb2, meter_pb2_grpc
    from meter_testing.requests import record

    server, _, url = iso
    tenant = f"bug-{uuid.uuid4().hex[:6]}"
    _, key = await server.keys.create(tenant, ["admin"])
    auth = (("authorization", f"Bearer {key}"),)
    monkeypatch.setattr(server.metering, "store", FaultyRecordStore(server.db))
    items = [record() for _ in range(7)]
    items[4].outcome, items[4].error_code = common_pb2.OUTCOME_ERROR, "boom"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        meter = meter_pb2_grpc.MeterStub(channel)
        reply = await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=items), metadata=auth)
        with pytest.raises(grpc.aio.AioRpcError) as single:
            await meter.RecordCall(items[4], metadata=auth)
    assert (reply.recorded, reply.failed, reply.duplicates) == (6, 1, 0)
    culprit = reply.results[4]
    assert culprit.index == 4 and culprit.error_code == "INTERNAL"
    assert "RuntimeError" in culprit.error_message and len(culprit.error_message) < 300
    assert all(r.error_code == "" for i, r in enumerate(reply.results) if i != 4)
    assert sorted(await recorded_ids(url, tenant)) == sorted(c.call_id for i, c in enumerate(items) if i != 4)
    assert single.value.code() == grpc.StatusCode.INTERNAL and len(single.value.details()) < 300


async def test_over_the_api_a_poisoned_batch_costs_another_tenant_nothing(iso):
    """The issue's scenario: tenant A's 2^62-token records share batches with tenant B's records.
    B never sees an error; A gets INVALID_ARGUMENT (never INTERNAL), whichever layer refuses it."""
    from meter.v1 import meter_pb2_grpc
    from meter_testing.requests import record

    server, _, url = iso
    keys = {}
    for name in ("a", "b"):
        _, keys[name] = await server.keys.create(f"api-{name}-{uuid.uuid4().hex[:6]}", ["admin"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        meter = meter_pb2_grpc.MeterStub(channel)

        async def send(name: str, tokens: int):
            try:
                await meter.RecordCall(
                    record(usage=common_pb2.Usage(output_tokens=tokens)),
                    metadata=(("authorization", f"Bearer {keys[name]}"),),
                )
                return grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                return exc.code()

        jobs = [send("b", 100) for _ in range(60)] + [send("a", 2**62) for _ in range(20)]
        codes = await asyncio.gather(*jobs)
    assert codes[:60] == [grpc.StatusCode.OK] * 60
    assert set(codes[60:]) <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    assert grpc.StatusCode.INVALID_ARGUMENT in codes[60:]
