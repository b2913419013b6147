"""MeterAdmin price RPCs: validation, versions and `at`, tenant overrides used by RecordCall,
immutability, bulk loads, tenant isolation."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess

import grpc
import pytest

from meter.v1 import admin_pb2, common_pb2
from meter_testing.processes import METER
from meter_testing.requests import field_violations, record
from meterd.api.convert import ts
from meterd.domain import genai_catalog

JAN = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
JUN = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def price(provider="acme", pattern="model-x*", effective_from=JAN, **rates) -> admin_pb2.Price:
    return admin_pb2.Price(
        provider=provider,
        model_pattern=pattern,
        effective_from=ts(effective_from),
        input_nanos_per_mtok=rates.pop("input", 1_000_000_000),
        output_nanos_per_mtok=rates.pop("output", 2_000_000_000),
        **rates,
    )


async def set_price(admin_stub, tenant, p: admin_pb2.Price) -> admin_pb2.Price:
    return (await admin_stub.SetPrice(admin_pb2.SetPriceRequest(price=p), metadata=tenant.auth())).price


async def list_prices(admin_stub, tenant, **filters) -> list[admin_pb2.Price]:
    if "at" in filters:
        filters["at"] = ts(filters["at"])
    reply = await admin_stub.ListPrices(admin_pb2.ListPricesRequest(**filters), metadata=tenant.auth())
    return list(reply.prices)


async def test_invalid_price_lists_every_violation(admin_stub, tenant):
    # Out-of-range numbers are answered by the bounds layer, all at once, before the price's own checks.
    bad = admin_pb2.Price(model_pattern="gpt-[45]", input_nanos_per_mtok=-1, request_nanos=10**12)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.SetPrice(admin_pb2.SetPriceRequest(price=bad), metadata=tenant.auth())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"price.input_nanos_per_mtok", "price.request_nanos"}
    bad = admin_pb2.Price(model_pattern="gpt-[45]")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.SetPrice(admin_pb2.SetPriceRequest(price=bad), metadata=tenant.auth())
    assert set(field_violations(err.value)) == {"price.provider", "price.model_pattern", "price.effective_from"}


async def test_set_then_list_versions_and_at(admin_stub, make_tenant):
    tenant = await make_tenant()
    first = await set_price(admin_stub, tenant, price(effective_from=JAN, note="launch"))
    second = await set_price(admin_stub, tenant, price(provider="ACME", effective_from=JUN, input=3_000_000_000))
    assert first.id.startswith("p") and first.id != second.id
    assert first.HasField("create_time") and first.note == "launch"
    assert second.provider == "acme"  # stored lower-cased, like calls' providers
    assert first.effective_from == ts(JAN) and first.input_nanos_per_mtok == 1_000_000_000

    listed = await list_prices(admin_stub, tenant, provider="acme")
    assert [p.id for p in listed] == [first.id, second.id]
    assert [p.id for p in await list_prices(admin_stub, tenant, provider="acme", at=JAN + dt.timedelta(days=40))] == [
        first.id
    ]
    assert [p.id for p in await list_prices(admin_stub, tenant, provider="acme", at=JUN)] == [second.id]
    assert not await list_prices(admin_stub, tenant, provider="acme", at=JAN - dt.timedelta(seconds=1))
    assert len(await list_prices(admin_stub, tenant, provider="acme", model="MODEL-X-large")) == 2  # pattern matches
    provider_wide = await list_prices(admin_stub, tenant, model="anything-at-all")  # catalog "*" fallbacks
    assert provider_wide and {p.model_pattern for p in provider_wide} == {"*"}
    assert not await list_prices(admin_stub, tenant, provider="acme", model="model-y")


async def test_list_shows_the_shared_catalog_and_the_tenant_override_in_force(admin_stub, make_tenant):
    tenant = await make_tenant()
    now = dt.datetime.now(dt.UTC)  # any-date: the session server's clock; a price a day old is in force
    catalog = await list_prices(admin_stub, tenant, provider="openai", model="gpt-4.1", at=now)
    assert catalog and all(p.id.startswith("p") for p in catalog)
    assert "gpt-4.1" in {p.model_pattern for p in catalog}  # the genai-prices model id
    own = await set_price(admin_stub, tenant, price("openai", "gpt-4.1*", now - dt.timedelta(days=1)))
    in_force = await list_prices(admin_stub, tenant, provider="openai", model="gpt-4.1", at=now)
    assert [p.id for p in in_force if p.model_pattern == "gpt-4.1*"] == [own.id]
    every = await list_prices(admin_stub, tenant, provider="openai", model="gpt-4.1")
    assert every[0].id == own.id  # the tenant's own versions come first, then the catalog's
    # Every version, not only those in force at one time (the catalog's service tiers came later).
    assert len(every) > len(await list_prices(admin_stub, tenant, provider="openai", model="gpt-4.1", at=JAN))


async def test_tenant_price_overrides_the_catalog_when_recording(admin_stub, meter_stub, make_tenant):
    tenant, other = await make_tenant(), await make_tenant()
    now = dt.datetime.now(dt.UTC)  # any-date: the session server's clock; a price a day old is in force
    own = await set_price(
        admin_stub,
        tenant,
        price("openai", "gpt-4.1*", now - dt.timedelta(days=1), cached_read_nanos_per_mtok=500_000_000),
    )
    reply = await meter_stub.RecordCall(record(cost_nanos=None), metadata=tenant.auth("record"))
    # (1000 * 1e9 + 500 * 2e9 + 200 * 0.5e9) / 1e6 = 2,100,000 nanos
    assert reply.cost_source == common_pb2.COST_SOURCE_CATALOG
    assert (reply.cost_nanos, reply.price_id) == (2_100_000, own.id)
    theirs = await meter_stub.RecordCall(record(cost_nanos=None), metadata=other.auth("record"))
    assert theirs.cost_source == common_pb2.COST_SOURCE_CATALOG
    assert theirs.price_id != own.id and theirs.cost_nanos != 2_100_000


async def test_price_versions_are_immutable(admin_stub, make_tenant):
    tenant = await make_tenant()
    await set_price(admin_stub, tenant, price())
    for again in (price(), price(input=7), price(pattern="MODEL-X*")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await set_price(admin_stub, tenant, again)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    later = await set_price(admin_stub, tenant, price(effective_from=JUN, input=7))
    assert later.input_nanos_per_mtok == 7


async def test_load_adds_and_skips_identical_versions(admin_stub, make_tenant):
    tenant = await make_tenant()
    batch = [price(pattern=f"m{i}", note=f"n{i}") for i in range(3)]
    reply = await admin_stub.LoadPrices(admin_pb2.LoadPricesRequest(prices=batch), metadata=tenant.auth())
    assert (reply.added, reply.skipped) == (3, 0)
    again = [*batch, price(pattern="m3"), price(pattern="m3")]  # the new one twice: the second is skipped too
    reply = await admin_stub.LoadPrices(admin_pb2.LoadPricesRequest(prices=again), metadata=tenant.auth())
    assert (reply.added, reply.skipped) == (1, 4)
    assert len(await list_prices(admin_stub, tenant, provider="acme")) == 4

    catalog_size = len(genai_catalog.installed().prices)
    reply = await admin_stub.LoadPrices(
        admin_pb2.LoadPricesRequest(include_default_catalog=True), metadata=tenant.auth()
    )
    assert (reply.added, reply.skipped) == (catalog_size, 0)  # a copy into the tenant's own prices
    reply = await admin_stub.LoadPrices(
        admin_pb2.LoadPricesRequest(include_default_catalog=True), metadata=tenant.auth()
    )
    assert (reply.added, reply.skipped) == (0, catalog_size)


async def test_load_is_all_or_nothing(admin_stub, make_tenant):
    tenant = await make_tenant()
    await set_price(admin_stub, tenant, price(pattern="kept"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.LoadPrices(
            admin_pb2.LoadPricesRequest(prices=[price(pattern="new"), price(pattern="bad", input=-1)]),
            metadata=tenant.auth(),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"prices[1].input_nanos_per_mtok"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.LoadPrices(
            admin_pb2.LoadPricesRequest(prices=[price(pattern="new"), price(pattern="new", input=5)]),
            metadata=tenant.auth(),
        )
    assert set(field_violations(err.value)) == {"prices[1]"}
    with pytest.raises(grpc.aio.AioRpcError) as err:  # conflicts with a stored version
        await admin_stub.LoadPrices(
            admin_pb2.LoadPricesRequest(prices=[price(pattern="new"), price(pattern="kept", input=5)]),
            metadata=tenant.auth(),
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert [p.model_pattern for p in await list_prices(admin_stub, tenant, provider="acme")] == ["kept"]


async def test_prices_are_scoped_to_the_tenant(admin_stub, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    await set_price(admin_stub, a, price(provider="only-a"))
    assert not await list_prices(admin_stub, b, provider="only-a")
    await set_price(admin_stub, b, price(provider="only-a"))  # the same version is b's own, not a conflict
    assert len(await list_prices(admin_stub, a, provider="only-a")) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.ListPrices(admin_pb2.ListPricesRequest(), metadata=a.auth("read"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def meter_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    return subprocess.run([*METER, *args], capture_output=True, text=True, env=env, timeout=60)


async def test_cli_set_list_and_reprice(meter_stub, make_tenant, database_url):
    tenant = await make_tenant()
    db = ("--database-url", database_url)
    set_args = ("prices", "set", "--tenant", tenant.id, "--provider", "OpenAI", "--model", "gpt-4.1",
                "--effective-from", "2026-01-01", "--input-per-mtok", "2.50", "--output-per-mtok", "10",
                "--note", "negotiated", *db)  # fmt: skip
    done = await asyncio.to_thread(meter_cli, *set_args)
    assert done.returncode == 0, done.stderr
    price_id, scope, provider, model, effective_from, *rates, note = done.stdout.strip().split("\t")
    assert (scope, provider, model, note) == ("tenant", "openai", "gpt-4.1", "negotiated")
    # Cache rates not given are the input rate (as in catalog files), and the command says so.
    assert effective_from == "2026-01-01T00:00:00+00:00" and rates == ["2.5", "10", "2.5", "2.5", "0", "0"]
    assert "--cached-read-per-mtok not given: the input rate" in done.stderr

    again = await asyncio.to_thread(meter_cli, *set_args)
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = await asyncio.to_thread(meter_cli, *set_args, "--input-per-mtok", "1e3")  # the last one counts
    assert bad.returncode == 2 and "decimal USD" in bad.stderr

    listed = await asyncio.to_thread(
        meter_cli, "prices", "list", "--tenant", tenant.id, "--provider", "openai", "--model", "gpt-4.1", *db
    )
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines() if not line.startswith("#")]
    assert lines[0][:2] == [price_id, "tenant"] and {line[1] for line in lines[1:]} == {"catalog"}
    catalog = await asyncio.to_thread(meter_cli, "prices", "list", "--provider", "openai", *db)
    assert price_id not in catalog.stdout and "\tcatalog\topenai\t" in catalog.stdout

    # The server picks the new tenant's price up, the 200 cached tokens at the input rate:
    # (1000 * 2.5e9 + 500 * 10e9 + 200 * 2.5e9) / 1e6 = 8,000,000 nanos.
    reply = await meter_stub.RecordCall(record(cost_nanos=None), metadata=tenant.auth("record"))
    assert (reply.cost_nanos, reply.price_id) == (8_000_000, price_id)
    now = dt.datetime.now(dt.UTC)  # any-date: a range around the call the session server just recorded
    repriced = await asyncio.to_thread(
        meter_cli, "prices", "reprice", "--tenant", tenant.id, "--from", (now - dt.timedelta(days=1)).isoformat(),
        "--to", (now + dt.timedelta(hours=1)).isoformat(), *db,
    )  # fmt: skip
    assert repriced.returncode == 0, repriced.stderr
    assert repriced.stdout.strip() == "examined 1 calls, changed 0, cost delta 0 USD"


async def test_cli_load_file_and_default_catalog(make_tenant, database_url, tmp_path):
    tenant = await make_tenant()
    catalog = tmp_path / "prices.toml"
    catalog.write_text(
        '[[price]]\nprovider = "acme"\nmodel = "m*"\neffective_from = 2025-01-01\ninput_per_mtok = "1"\n'
        'output_per_mtok = "2"\ncached_read_per_mtok = "0.5"\ncache_write_per_mtok = "1"\nper_request = "0.001"\n'
        'note = "from a file"\n'
    )
    db = ("--database-url", database_url)
    loaded = await asyncio.to_thread(meter_cli, "prices", "load", "--tenant", tenant.id, str(catalog), "--default", *db)
    assert loaded.returncode == 0, loaded.stderr
    assert (
        loaded.stdout.strip()
        == f"added {1 + len(genai_catalog.installed().prices)}, skipped 0 (identical versions already stored)"
    )
    again = await asyncio.to_thread(meter_cli, "prices", "load", "--tenant", tenant.id, str(catalog), *db)
    assert again.stdout.strip() == "added 0, skipped 1 (identical versions already stored)"
    listed = await asyncio.to_thread(meter_cli, "prices", "list", "--tenant", tenant.id, "--provider", "acme", *db)
    [line] = [line for line in listed.stdout.splitlines() if not line.startswith("#")]
    assert line.split("\t")[1:] == ["tenant", "acme", "m*", "2025-01-01T00:00:00+00:00", "1", "2", "0.5", "1",
                                    "0.001", "0", "from a file"]  # fmt: skip


async def test_cli_set_and_load_follow_one_rule_for_rates_left_out(make_tenant, database_url, tmp_path):
    tenant = await make_tenant()
    db = ("--database-url", database_url)
    catalog = tmp_path / "anthropic.toml"
    catalog.write_text(
        '[[price]]\nprovider = "anthropic"\nmodel = "claude-x"\neffective_from = 2025-01-01\n'
        'input_per_mtok = "3"\noutput_per_mtok = "15"\ncached_read_per_mtok = "0.30"\n'
    )
    loaded = await asyncio.to_thread(meter_cli, "prices", "load", "--tenant", tenant.id, str(catalog), *db)
    assert loaded.returncode == 0, loaded.stderr
    assert "cache_write_per_mtok not given: the input rate" in loaded.stderr
    done = await asyncio.to_thread(
        meter_cli, "prices", "set", "--tenant", tenant.id, "--provider", "anthropic", "--model", "claude-y",
        "--effective-from", "2025-01-01", "--input-per-mtok", "3", "--output-per-mtok", "15",
        "--cached-read-per-mtok", "0.30", *db,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = await asyncio.to_thread(meter_cli, "prices", "list", "--tenant", tenant.id, "--provider", "anthropic", *db)
    rows = {r[3]: r[5:] for r in (line.split("\t") for line in listed.stdout.splitlines()) if r[1] == "tenant"}
    # Neither bills cache writes at $0, neither needs a note.
    assert rows == {m: ["3", "15", "0.3", "3", "0", "0", ""] for m in ("claude-x", "claude-y")}
    no_output = catalog.read_text().replace('output_per_mtok = "15"\n', "")
    catalog.write_text(no_output)
    refused = await asyncio.to_thread(meter_cli, "prices", "load", "--tenant", tenant.id, str(catalog), *db)
    assert refused.returncode != 0 and "output_per_mtok" in refused.stderr
