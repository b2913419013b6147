"""GetRecommendations over a real port and database, on a known data set with hand-computed answers.

The tenant prices a provider of its own (acmeai, nanos per million tokens; "embed" has no output
price), so the same-provider candidates are exactly these four models whatever the shared catalog
holds. Calls carry no client cost: Meter prices them with the same rates when they are recorded.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import duration_pb2

from e2e.conftest import T0
from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meter_testing.requests import field_violations

G = 10**9  # $1 per million tokens
RATES = {  # input, output, cached read, cache write
    "big": (10 * G, 30 * G, 1 * G, 12_500_000_000),
    "mid": (2 * G, 8 * G, G // 2, 2_500_000_000),
    "tiny": (G // 2, 1_500_000_000, G // 10, G // 2),
    "embed": (G // 10, 0, G // 10, G // 10),
}


def _ms(n: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(n)
    return d


def call(i, provider, model, tokens, latency_ms, ok=True):
    inp, out, cached, write = tokens
    return meter_pb2.RecordCallRequest(
        call_id=f"r{i}", subject=f"user:{i % 2}", provider=provider, model=model, operation="chat",
        usage=common_pb2.Usage(input_tokens=inp, output_tokens=out, cached_read_tokens=cached, cache_write_tokens=write),
        latency=_ms(latency_ms), outcome=common_pb2.OUTCOME_SUCCESS if ok else common_pb2.OUTCOME_ERROR,
        error_code="" if ok else "503", occurred_at=T0 - dt.timedelta(days=2, hours=i),
    )  # fmt: skip


CALLS = [
    call(1, "acmeai", "big", (100_000, 20_000, 50_000, 10_000), 3000, ok=False),
    call(2, "acmeai", "big", (300_000, 40_000, 0, 0), 500),
    call(3, "acmeai", "tiny", (1000, 1000, 0, 0), 100),
    call(4, "zeta", "z1", (1000, 0, 0, 0), 1000, ok=False),  # zeta has no price
    call(5, "zeta", "z1", (1000, 0, 0, 0), 1000, ok=False),
]


@pytest.fixture
async def known(env, clocked):
    _, meter, _, tenant, _ = env
    admin = clocked[2]
    for model, (inp, out, cached, write) in RATES.items():
        await admin.SetPrice(
            admin_pb2.SetPriceRequest(
                price=admin_pb2.Price(
                    provider="acmeai", model_pattern=model, effective_from=T0 - dt.timedelta(days=30),
                    input_nanos_per_mtok=inp, output_nanos_per_mtok=out, cached_read_nanos_per_mtok=cached,
                    cache_write_nanos_per_mtok=write,
                )
            ),
            metadata=tenant.auth(),
        )  # fmt: skip
    reply = await meter.RecordCalls(meter_pb2.RecordCallsRequest(calls=CALLS), metadata=tenant.auth("record"))
    assert reply.failed == 0
    return meter, tenant


async def recommend(meter, tenant, **fields) -> meter_pb2.GetRecommendationsResponse:
    return await meter.GetRecommendations(meter_pb2.GetRecommendationsRequest(**fields), metadata=tenant.auth("read"))


async def test_cheaper_models_of_the_same_provider(known):
    meter, tenant = known
    r = await recommend(meter, tenant)
    assert r.priced_at.ToDatetime(dt.UTC) == T0
    assert [(m.provider, m.model) for m in r.models] == [("acmeai", "big"), ("acmeai", "tiny"), ("zeta", "z1")]
    big, tiny, z1 = r.models
    # big: 400,000 input, 60,000 output, 50,000 cached read, 10,000 cache write, at $10/$30/$1/$12.5:
    # 4.0 + 1.8 + 0.05 + 0.125 = $5.975, recorded with the same price.
    assert (big.calls, big.input_tokens, big.output_tokens, big.cached_read_tokens, big.cache_write_tokens) == (
        2, 400_000, 60_000, 50_000, 10_000
    )  # fmt: skip
    assert big.recorded_cost_nanos == big.catalog_cost_nanos == 5_975_000_000 and big.price_id
    # On tiny: 0.2 + 0.09 + 0.005 + 0.005 = $0.30; on mid: 0.8 + 0.48 + 0.025 + 0.025 = $1.33. embed
    # has no output price: no alternative for usage with output tokens.
    assert [(a.model, a.cost_nanos, a.saving_nanos) for a in big.alternatives] == [
        ("tiny", 300_000_000, 5_675_000_000),
        ("mid", 1_330_000_000, 4_645_000_000),
    ]
    b = big.alternatives[0].cost_breakdown
    assert (b.input_nanos, b.output_nanos, b.cached_read_nanos, b.cache_write_nanos) == (
        200_000_000, 90_000_000, 5_000_000, 5_000_000
    )  # fmt: skip
    # tiny ($0.0005 + $0.0015 = $0.002) is the cheapest that prices output: nothing cheaper.
    assert tiny.catalog_cost_nanos == 2_000_000 and list(tiny.alternatives) == []
    # z1 has no price, and its provider no priced model.
    assert (z1.recorded_cost_nanos, z1.catalog_cost_nanos, z1.price_id, list(z1.alternatives)) == (0, 0, "", [])
    # max_alternatives keeps the cheapest.
    one = await recommend(meter, tenant, max_alternatives=1)
    assert [a.model for a in one.models[0].alternatives] == ["tiny"]


async def test_named_candidates_are_all_priced_dearer_ones_too(known):
    meter, tenant = known
    r = await recommend(meter, tenant, candidate_models=["acmeai/mid", "acmeai/nope", "ZETA/z1"])
    assert list(r.unpriced_candidates) == ["acmeai/nope", "zeta/z1"]
    big, tiny, z1 = r.models
    assert [(a.model, a.saving_nanos) for a in big.alternatives] == [("mid", 4_645_000_000)]
    # tiny on mid: 1,000 x $2 + 1,000 x $8 per Mtok = $0.01, dearer than its $0.002.
    assert [(a.model, a.cost_nanos, a.saving_nanos) for a in tiny.alternatives] == [("mid", 10_000_000, -8_000_000)]
    # z1 (unpriced, recorded $0) on mid: 2,000 input tokens x $2/Mtok = $0.004.
    assert [(a.model, a.cost_nanos, a.saving_nanos) for a in z1.alternatives] == [("mid", 4_000_000, -4_000_000)]


async def test_caching_figures_and_a_target_hit_rate(known):
    meter, tenant = known
    r = await recommend(meter, tenant, target_cache_hit_rate_bp=5000)
    big, tiny, z1 = r.models
    # big: 50,000 cached of 460,000 input tokens; they saved 50,000 x ($10 - $1)/Mtok = $0.45.
    assert big.cache_hit_rate == pytest.approx(50_000 / 460_000)
    assert big.cache_savings_nanos == 450_000_000
    # At 50%: 230,000 cached, 180,000 more, each saving $9/Mtok: $1.62.
    assert (big.target_cached_tokens_added, big.target_cache_saving_nanos) == (180_000, 1_620_000_000)
    # tiny: 500 of its 1,000 input tokens at ($0.5 - $0.1)/Mtok = $0.0002. z1 has no price: nothing.
    assert (tiny.target_cached_tokens_added, tiny.target_cache_saving_nanos) == (500, 200_000)
    assert (z1.target_cached_tokens_added, z1.target_cache_saving_nanos) == (0, 0)
    c = r.cache
    assert (c.input_tokens, c.cached_read_tokens, c.cache_write_tokens) == (403_000, 50_000, 10_000)
    assert c.cache_hit_rate == pytest.approx(50_000 / 463_000)
    assert (c.cache_savings_nanos, c.target_cache_hit_rate_bp, c.target_cache_saving_nanos) == (
        450_000_000, 5000, 1_620_200_000
    )  # fmt: skip
    # A rate below the current one moves nothing; without a target there is no what-if.
    low = await recommend(meter, tenant, target_cache_hit_rate_bp=500)
    assert low.models[0].target_cache_saving_nanos == 0
    plain = await recommend(meter, tenant)
    assert not plain.cache.HasField("target_cache_hit_rate_bp") and plain.cache.target_cache_saving_nanos == 0


async def test_error_and_latency_hot_spots(known):
    meter, tenant = known
    r = await recommend(meter, tenant)
    assert [(h.provider, h.model, h.errors, h.calls) for h in r.error_rate_models] == [
        ("zeta", "z1", 2, 2),
        ("acmeai", "big", 1, 2),
    ]
    assert [(h.provider, h.error_rate) for h in r.error_rate_providers] == [("zeta", 1.0), ("acmeai", 1 / 3)]
    # p95 from the latency histograms: big's 3 s, z1's 1 s, tiny's 0.1 s (within the histogram's error).
    assert [h.model for h in r.latency_models] == ["big", "z1", "tiny"]
    assert r.latency_models[0].latency_p95.ToTimedelta().total_seconds() == pytest.approx(3.0, rel=0.1)
    assert [h.provider for h in r.latency_providers] == ["acmeai", "zeta"]
    # min_calls drops the small groups; max_hot_spots cuts the lists.
    r = await recommend(meter, tenant, min_calls=3, max_hot_spots=1)
    assert [h.model for h in r.latency_models] == []
    assert [(h.provider, h.model) for h in r.latency_providers] == [("acmeai", "")]
    assert list(r.error_rate_models) == [] and [h.provider for h in r.error_rate_providers] == ["acmeai"]


async def test_filters_and_range_apply(known):
    meter, tenant = known
    # The outcome filter reads raw calls: only the errors (big's call r1 and z1's two).
    r = await recommend(meter, tenant, filter=meter_pb2.UsageFilter(outcome=common_pb2.OUTCOME_ERROR))
    assert [(m.model, m.calls, m.input_tokens) for m in r.models] == [("big", 1, 100_000), ("z1", 2, 2000)]
    # A range after every call: nothing.
    empty = await recommend(meter, tenant, start=T0 - dt.timedelta(hours=1))
    assert list(empty.models) == [] and empty.cache.cache_hit_rate == 0


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(candidate_models=["no-slash"]), "candidate_models[0]"),
        (dict(candidate_models=["acmeai/"]), "candidate_models[0]"),
        (dict(candidate_models=["a/b"] * 65), "candidate_models"),
        (dict(max_alternatives=51), "max_alternatives"),
        (dict(target_cache_hit_rate_bp=10_001), "target_cache_hit_rate_bp"),
        (dict(max_hot_spots=-1), "max_hot_spots"),
        (dict(min_calls=-1), "min_calls"),
    ],
)
async def test_invalid_requests(known, fields, field):
    meter, tenant = known
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await recommend(meter, tenant, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value)


async def test_needs_the_read_role(known):
    meter, tenant = known
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await meter.GetRecommendations(meter_pb2.GetRecommendationsRequest(), metadata=tenant.auth("record"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- the tenant's equivalence list ----------------------------------------------------------------


async def _equivalence(admin, tenant, name, *models, role="admin"):
    return await admin.SetModelEquivalence(
        admin_pb2.SetModelEquivalenceRequest(name=name, models=list(models)), metadata=tenant.auth(role)
    )


async def test_an_equivalence_list_supplies_candidates_across_providers(known, clocked):
    meter, tenant = known
    admin = clocked[2]
    # betaai/b-small: $1 input, $2 output, $0.10 cached read, $1 cache write per Mtok.
    await admin.SetPrice(
        admin_pb2.SetPriceRequest(
            price=admin_pb2.Price(
                provider="betaai", model_pattern="b-small", effective_from=T0 - dt.timedelta(days=30),
                input_nanos_per_mtok=G, output_nanos_per_mtok=2 * G, cached_read_nanos_per_mtok=G // 10,
                cache_write_nanos_per_mtok=G,
            )
        ),
        metadata=tenant.auth(),
    )  # fmt: skip
    made = await _equivalence(admin, tenant, "big-class", "acmeai/big", "BetaAI/b-small", "acmeai/mid", "gamma/none")
    assert made.created and list(made.equivalence.models) == [
        "acmeai/big",
        "betaai/b-small",
        "acmeai/mid",
        "gamma/none",
    ]
    await _equivalence(admin, tenant, "tiny-class", "acmeai/tiny", "acmeai/mid")

    r = await recommend(meter, tenant)
    big, tiny, z1 = r.models
    assert (big.candidate_source, list(big.equivalence_groups)) == (
        meter_pb2.CANDIDATE_SOURCE_EQUIVALENCE_LIST, ["big-class"]
    )  # fmt: skip
    # big's 400,000 input, 60,000 output, 50,000 cached, 10,000 written on b-small: 0.40 + 0.12 +
    # 0.005 + 0.01 = $0.535, saving 5.975 - 0.535 = $5.44; on mid $1.33 (as above). tiny is in no
    # group of big's: the list replaces the same-provider candidates.
    assert [(a.provider, a.model, a.cost_nanos, a.saving_nanos) for a in big.alternatives] == [
        ("betaai", "b-small", 535_000_000, 5_440_000_000),
        ("acmeai", "mid", 1_330_000_000, 4_645_000_000),
    ]
    # tiny's group lists mid although dearer: 1,000 x $2 + 1,000 x $8 per Mtok = $0.01 vs $0.002.
    assert tiny.candidate_source == meter_pb2.CANDIDATE_SOURCE_EQUIVALENCE_LIST
    assert [(a.model, a.cost_nanos, a.saving_nanos) for a in tiny.alternatives] == [("mid", 10_000_000, -8_000_000)]
    assert (z1.candidate_source, list(z1.equivalence_groups)) == (meter_pb2.CANDIDATE_SOURCE_SAME_PROVIDER, [])
    assert list(r.unpriced_candidates) == ["gamma/none"]

    # Named candidates win over the list.
    named = await recommend(meter, tenant, candidate_models=["acmeai/mid"])
    assert {m.candidate_source for m in named.models} == {meter_pb2.CANDIDATE_SOURCE_REQUEST}
    assert [(a.model, a.saving_nanos) for a in named.models[0].alternatives] == [("mid", 4_645_000_000)]

    listed = await admin.ListModelEquivalences(admin_pb2.ListModelEquivalencesRequest(), metadata=tenant.auth())
    assert [(e.name, len(e.models)) for e in listed.equivalences] == [("big-class", 4), ("tiny-class", 2)]
    replaced = await _equivalence(admin, tenant, "tiny-class", "acmeai/tiny", "betaai/b-small")
    assert not replaced.created and list(replaced.equivalence.models) == ["acmeai/tiny", "betaai/b-small"]
    await admin.DeleteModelEquivalence(
        admin_pb2.DeleteModelEquivalenceRequest(name="tiny-class"), metadata=tenant.auth()
    )
    again = await recommend(meter, tenant)
    assert again.models[1].candidate_source == meter_pb2.CANDIDATE_SOURCE_SAME_PROVIDER
    assert list(again.models[1].alternatives) == []


@pytest.mark.parametrize(
    "name, models, field",
    [
        ("", ["a/b", "a/c"], "name"),
        ("has space", ["a/b", "a/c"], "name"),
        ("n" * 65, ["a/b", "a/c"], "name"),
        ("g", ["a/b"], "models"),
        ("g", [f"a/m{i}" for i in range(33)], "models"),
        ("g", ["a/b", "nope"], "models[1]"),
        ("g", ["a/b", "a/" + "m" * 300], "models[1]"),
        ("g", ["a/b", "A/B"], "models"),  # the same model twice
    ],
)
async def test_equivalence_bounds(make_clocked_tenant, clocked, name, models, field):
    tenant = await make_clocked_tenant()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _equivalence(clocked[2], tenant, name, *models)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value), field_violations(err.value)


async def test_equivalence_groups_per_tenant_and_roles(make_clocked_tenant, clocked):
    admin = clocked[2]
    tenant = await make_clocked_tenant()
    for i in range(100):
        await _equivalence(admin, tenant, f"g{i}", "a/x", f"a/y{i}")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _equivalence(admin, tenant, "g100", "a/x", "a/z")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 100" in err.value.details()
    assert (await _equivalence(admin, tenant, "g7", "a/x", "a/z")).created is False  # replacing is fine
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.DeleteModelEquivalence(admin_pb2.DeleteModelEquivalenceRequest(name="nope"), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for call in (
        _equivalence(admin, tenant, "g1", "a/x", "a/y", role="read"),
        admin.ListModelEquivalences(admin_pb2.ListModelEquivalencesRequest(), metadata=tenant.auth("read")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    other = await make_clocked_tenant()
    listed = await admin.ListModelEquivalences(admin_pb2.ListModelEquivalencesRequest(), metadata=other.auth())
    assert list(listed.equivalences) == []  # per tenant
