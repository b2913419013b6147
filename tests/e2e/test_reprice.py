"""RepriceCalls: new costs for recorded calls, and the first answers, hourly rollups and cost counters
that summed the old ones corrected with them; client costs and calls outside the range untouched."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict

import grpc
import psycopg
import pytest
from psycopg.rows import dict_row

from meter.v1 import admin_pb2, common_pb2
from meter_testing.requests import check, limit, record
from meter_testing.rollups import assert_rollup_grains_agree
from meterd.api.convert import ts

from .conftest import T0

NEW_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
START, END = T0 - dt.timedelta(hours=36), T0 + dt.timedelta(days=1)
LATER = T0 + dt.timedelta(hours=13)  # the next UTC day


def day(at: dt.datetime) -> dt.datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def usage(input_tokens=0, output_tokens=0, cached_read_tokens=0) -> common_pb2.Usage:
    return common_pb2.Usage(
        input_tokens=input_tokens, output_tokens=output_tokens, cached_read_tokens=cached_read_tokens
    )


async def db_rows(database_url: str, sql: str, *params) -> list[dict]:
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()


async def assert_consistent(database_url: str, tenant_id: str, charged_day: dict[str, dt.datetime]) -> dict:
    """Every copy of the cost agrees with calls.cost_nanos; returns call_id -> call row."""
    calls = {
        r["call_id"]: r
        for r in await db_rows(
            database_url,
            "SELECT call_id, occurred_at, subject, cost_nanos, cost_source, price_id FROM calls WHERE tenant_id = %s",
            tenant_id,
        )
    }
    first_answers = await db_rows(
        database_url, "SELECT call_id, cost_nanos, cost_source, price_id FROM call_ids WHERE tenant_id = %s", tenant_id
    )
    assert {r["call_id"]: (r["cost_nanos"], r["cost_source"], r["price_id"]) for r in first_answers} == {
        c: (r["cost_nanos"], r["cost_source"], r["price_id"]) for c, r in calls.items()
    }

    rollups = await db_rows(
        database_url,
        """SELECT hour, subject, provider, model, operation, cost_nanos::bigint AS cost, unpriced_calls
             FROM usage_hourly WHERE tenant_id = %s""",
        tenant_id,
    )
    raw = await db_rows(
        database_url,
        """SELECT date_trunc('hour', occurred_at) AS hour, subject, provider, model, operation,
                  sum(cost_nanos)::bigint AS cost, count(*) FILTER (WHERE cost_source = 'unpriced') AS unpriced_calls
             FROM calls WHERE tenant_id = %s GROUP BY 1, 2, 3, 4, 5""",
        tenant_id,
    )
    assert sorted(map(tuple, (r.values() for r in rollups))) == sorted(map(tuple, (r.values() for r in raw)))
    await assert_rollup_grains_agree(database_url)

    counters = defaultdict(dict)
    for r in await db_rows(
        database_url,
        "SELECT limit_id, partition_key, window_start, used, reserved FROM counters WHERE tenant_id = %s",
        tenant_id,
    ):
        assert r["reserved"] == 0
        counters[r["limit_id"]][(r["partition_key"], r["window_start"])] = r["used"]
    expected = defaultdict(lambda: defaultdict(int))
    for call_id, r in calls.items():
        window = charged_day[call_id]
        if r["subject"].startswith("team:a/"):
            expected["team-cost"][("", window)] += r["cost_nanos"]
        expected["user-cost"][(r["subject"], window)] += r["cost_nanos"]
        expected["reqs"][("", window)] += 1
    for limit_id in ("team-cost", "user-cost", "reqs"):
        assert counters[limit_id] == dict(expected[limit_id]), limit_id
    return calls


async def test_reprice_corrects_calls_answers_rollups_and_counters(env, clocked):
    database_url = clocked[0].database_url
    _, meter, set_limits, tenant, clock = env
    admin = clocked[2]
    await set_limits(
        limit("team-cost", "COST_NANOS", "DAY", 10**15, selector={"subject_prefix": "team:a/"}),
        limit("user-cost", "COST_NANOS", "DAY", 10**15, partition="PER_SUBJECT"),
        limit("reqs", "REQUESTS", "DAY", 10**9),
    )

    def call(call_id, at, subject, model="gpt-4.1", provider="openai", cost=None, **tokens):
        return record(call_id, occurred_at=ts(at), subject=subject, provider=provider, model=model,
                      usage=usage(**tokens), cost_nanos=cost)  # fmt: skip

    requests = {
        "c0": call("c0", T0 - dt.timedelta(days=2), "team:a/u1", input_tokens=1000),  # outside the range
        "c1": call(
            "c1", T0 - dt.timedelta(days=1), "team:a/u1", input_tokens=1000, output_tokens=500, cached_read_tokens=200
        ),  # fmt: skip
        "c2": call("c2", T0 - dt.timedelta(hours=23, minutes=30), "team:a/u2", input_tokens=3000, output_tokens=1000),
        "c3": call("c3", T0 - dt.timedelta(hours=20), "team:b/u1", cost=5_000_000, input_tokens=100, output_tokens=100),
        "c4": call(
            "c4",
            T0 - dt.timedelta(hours=2),
            "team:a/u1",
            provider="acme",
            model="x",
            input_tokens=2000,
            output_tokens=1000,
        ),  # fmt: skip
        "c5": call(
            "c5", T0 - dt.timedelta(hours=1), "team:b/u2", model="gpt-4.1-mini", input_tokens=1000, output_tokens=1000
        ),  # fmt: skip
    }
    first = {}
    for call_id, request in requests.items():
        first[call_id] = await meter.RecordCall(request, metadata=tenant.auth("record"))
    assert first["c4"].cost_source == common_pb2.COST_SOURCE_UNPRICED
    assert first["c1"].cost_source == common_pb2.COST_SOURCE_CATALOG
    # c6 settles a reservation taken on T0's day but happens on the next day: its counters are the
    # reservation's (T0's day), not those of its occurred_at.
    reserved = await meter.CheckQuota(
        check(subject="team:a/u3", estimate={"input_tokens": 500, "max_output_tokens": 250}),
        metadata=tenant.auth("check"),
    )
    assert reserved.allowed and reserved.reservation_id
    clock.set(LATER + dt.timedelta(minutes=5))
    requests["c6"] = call("c6", LATER, "team:a/u3", input_tokens=500, output_tokens=250)
    requests["c6"].reservation_id = reserved.reservation_id
    requests["c7"] = call("c7", LATER + dt.timedelta(minutes=1), "team:a/u3", input_tokens=100)
    for call_id in ("c6", "c7"):
        first[call_id] = await meter.RecordCall(requests[call_id], metadata=tenant.auth("record"))
    assert first["c6"].reservation_settled
    charged_day = {c: day(r.occurred_at.ToDatetime(tzinfo=dt.UTC)) for c, r in requests.items()}
    charged_day["c6"] = day(T0)
    await assert_consistent(database_url, tenant.id, charged_day)

    # New tenant prices, in force before every call: gpt-4.1 exact beats the catalog's gpt-4.1* glob.
    gpt = (await admin.SetPrice(admin_pb2.SetPriceRequest(price=admin_pb2.Price(
        provider="openai", model_pattern="gpt-4.1", effective_from=ts(NEW_FROM),
        input_nanos_per_mtok=1_000_000_000, output_nanos_per_mtok=2_000_000_000, cached_read_nanos_per_mtok=500_000_000,
    )), metadata=tenant.auth())).price  # fmt: skip
    acme = (await admin.SetPrice(admin_pb2.SetPriceRequest(price=admin_pb2.Price(
        provider="acme", model_pattern="x", effective_from=ts(NEW_FROM),
        input_nanos_per_mtok=3_000_000_000, output_nanos_per_mtok=4_000_000_000,
    )), metadata=tenant.auth())).price  # fmt: skip
    new_cost = {
        "c1": 2_100_000,  # (1000 * 1e9 + 500 * 2e9 + 200 * 0.5e9) / 1e6
        "c2": 5_000_000,  # (3000 * 1e9 + 1000 * 2e9) / 1e6
        "c4": 10_000_000,  # (2000 * 3e9 + 1000 * 4e9) / 1e6
        "c6": 1_000_000,  # (500 * 1e9 + 250 * 2e9) / 1e6
        "c7": 100_000,  # 100 * 1e9 / 1e6
    }

    async def reprice(**fields) -> admin_pb2.RepriceCallsResponse:
        request = admin_pb2.RepriceCallsRequest(start=ts(START), end=ts(END), **fields)
        return await admin.RepriceCalls(request, metadata=tenant.auth())

    only_acme = await reprice(provider="ACME", model="X")
    assert (only_acme.calls_examined, only_acme.calls_changed, only_acme.cost_delta_nanos) == (1, 1, 10_000_000)
    reply = await reprice()
    assert (reply.calls_examined, reply.calls_changed) == (6, 4)  # c1, c2, c4..c7 examined; c3 is the client's
    assert reply.cost_delta_nanos == sum(new_cost[c] - first[c].cost_nanos for c in ("c1", "c2", "c6", "c7"))

    calls = await assert_consistent(database_url, tenant.id, charged_day)
    for call_id, cost in new_cost.items():
        price_id = acme.id if call_id == "c4" else gpt.id
        assert (calls[call_id]["cost_nanos"], calls[call_id]["cost_source"], calls[call_id]["price_id"]) == (
            cost,
            "catalog",
            price_id,
        ), call_id
    for untouched in ("c0", "c3", "c5"):  # outside the range, client cost, other model (catalog price kept)
        assert calls[untouched]["cost_nanos"] == first[untouched].cost_nanos
        assert calls[untouched]["price_id"] == first[untouched].price_id
    assert calls["c3"]["cost_source"] == "client"

    retry = await meter.RecordCall(requests["c1"], metadata=tenant.auth("record"))
    assert retry.duplicate and (retry.cost_nanos, retry.price_id) == (2_100_000, gpt.id)

    again = await reprice()
    assert (again.calls_examined, again.calls_changed, again.cost_delta_nanos) == (6, 0, 0)

    with_client = await reprice(include_client_costs=True)
    assert (with_client.calls_examined, with_client.calls_changed) == (7, 1)
    assert with_client.cost_delta_nanos == 300_000 - 5_000_000  # c3 at (100 * 1e9 + 100 * 2e9) / 1e6
    calls = await assert_consistent(database_url, tenant.id, charged_day)
    assert (calls["c3"]["cost_nanos"], calls["c3"]["cost_source"]) == (300_000, "catalog")
    retry = await meter.RecordCall(requests["c3"], metadata=tenant.auth("record"))
    assert retry.duplicate and retry.cost_nanos == 300_000 and retry.cost_source == common_pb2.COST_SOURCE_CATALOG


async def test_reprice_without_new_prices_changes_nothing_and_checks_the_range(env, clocked):
    _, meter, _, tenant, _ = env
    admin = clocked[2]
    own = (await admin.SetPrice(admin_pb2.SetPriceRequest(price=admin_pb2.Price(
        provider="acme", model_pattern="y*", effective_from=ts(T0 - dt.timedelta(days=1)), request_nanos=7,
    )), metadata=tenant.auth())).price  # fmt: skip
    request = record("u1", provider="acme", model="y1", cost_nanos=None, occurred_at=ts(T0 - dt.timedelta(hours=3)))
    first = await meter.RecordCall(request, metadata=tenant.auth("record"))
    assert (first.cost_nanos, first.price_id) == (7, own.id)
    other = record("u2", provider="acme", model="y1", cost_nanos=None, occurred_at=ts(T0 - dt.timedelta(days=2)))
    assert (
        await meter.RecordCall(other, metadata=tenant.auth("record"))
    ).cost_source == common_pb2.COST_SOURCE_UNPRICED
    reply = await admin.RepriceCalls(
        admin_pb2.RepriceCallsRequest(start=ts(T0 - dt.timedelta(days=3)), end=ts(END)), metadata=tenant.auth()
    )
    assert (reply.calls_examined, reply.calls_changed, reply.cost_delta_nanos) == (2, 0, 0)
    for bad in (
        admin_pb2.RepriceCallsRequest(start=ts(END), end=ts(START)),
        admin_pb2.RepriceCallsRequest(end=ts(END)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.RepriceCalls(bad, metadata=tenant.auth())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_reprice_concurrent_with_recording_stays_consistent(env, clocked):
    database_url = clocked[0].database_url
    _, meter, set_limits, tenant, _ = env
    admin = clocked[2]
    await set_limits(
        limit("team-cost", "COST_NANOS", "DAY", 10**15, selector={"subject_prefix": "team:a/"}),
        limit("user-cost", "COST_NANOS", "DAY", 10**15, partition="PER_SUBJECT"),
        limit("reqs", "REQUESTS", "DAY", 10**9),
    )
    requests = {}

    async def record_some(first: int, count: int) -> None:
        for i in range(first, first + count):
            at = T0 - dt.timedelta(hours=30) + dt.timedelta(minutes=4 * i)
            requests[f"k{i}"] = record(f"k{i}", subject=f"team:{'ab'[i % 2]}/u{i % 5}", cost_nanos=None,
                                       occurred_at=ts(at), usage=usage(input_tokens=100 + i, output_tokens=i))  # fmt: skip
            await meter.RecordCall(requests[f"k{i}"], metadata=tenant.auth("record"))

    await asyncio.gather(*(record_some(n * 40, 40) for n in range(5)))
    await admin.SetPrice(admin_pb2.SetPriceRequest(price=admin_pb2.Price(
        provider="openai", model_pattern="gpt-4.1", effective_from=ts(NEW_FROM), input_nanos_per_mtok=1_234_567,
        output_nanos_per_mtok=7_654_321,
    )), metadata=tenant.auth())  # fmt: skip

    async def reprice() -> admin_pb2.RepriceCallsResponse:
        request = admin_pb2.RepriceCallsRequest(start=ts(START), end=ts(END))
        return await admin.RepriceCalls(request, metadata=tenant.auth())

    results = await asyncio.gather(*(record_some(200 + n * 40, 40) for n in range(5)), reprice(), reprice())
    assert sum(r.calls_changed for r in results[-2:]) == 200  # each old call once, whichever reprice got it
    final = await reprice()
    assert final.calls_changed == 0 and final.calls_examined == 400
    charged_day = {c: day(r.occurred_at.ToDatetime(tzinfo=dt.UTC)) for c, r in requests.items()}
    calls = await assert_consistent(database_url, tenant.id, charged_day)
    for call_id, request in requests.items():  # rounded half up: (in * 1,234,567 + out * 7,654,321) / 1e6
        numerator = request.usage.input_tokens * 1_234_567 + request.usage.output_tokens * 7_654_321
        assert calls[call_id]["cost_nanos"] == (numerator + 500_000) // 1_000_000, call_id
