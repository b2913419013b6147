"""The shared catalog from genai-prices: replacing the hand-kept catalog on upgrade, the first-start
import, and `meter prices sync` (dry run, a data file, back to the installed version) against a
running server whose recorded calls keep their price_id."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import grpc
import psycopg

from meter.v1 import admin_pb2, admin_pb2_grpc, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.processes import METER
from meter_testing.requests import record
from meterd.domain import genai_catalog
from meterd.store.migrate import migrate, migrations_dir


def meter_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    return subprocess.run([*METER, *args], capture_output=True, text=True, env=env, timeout=120)


async def rows(url: str, sql: str, *params) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql, params)).fetchall()


def test_prices_sync_help():
    result = meter_cli("prices", "sync", "--help")
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout and "--from FILE" in result.stdout and "genai-prices" in result.stdout


async def test_upgrade_retires_the_hand_kept_catalog_and_imports_genai_prices(fresh_database_url, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for path in sorted(migrations_dir().glob("000[1-5]_*.sql")):
        shutil.copy(path, old)
    await migrate(fresh_database_url, old)
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        # What a 0001-era server seeded (one statement, one created_at), then an operator's own row.
        await conn.execute(
            """INSERT INTO prices (provider, model_pattern, effective_from, input_nanos_per_mtok, note)
               VALUES ('openai', 'gpt-4.1*', '2025-04-14', 2000000000, 'seeded'),
                      ('openrouter', '*', '2024-01-01', 500000000, 'seeded')"""
        )
        await conn.execute(
            """INSERT INTO prices (provider, model_pattern, effective_from, input_nanos_per_mtok, note, created_at)
               VALUES ('acme', 'model-x', '2025-01-01', 7, 'operator', now() + interval '1 hour')"""
        )
    await migrate(fresh_database_url)
    retired = await rows(fresh_database_url, "SELECT note, retired_at IS NOT NULL FROM prices ORDER BY id")
    assert retired == [("seeded", True), ("seeded", True), ("operator", False)]

    for _ in range(2):  # a second start (or replica) does not import again
        async with running_server(fresh_database_url):
            pass
    imports = await rows(fresh_database_url, "SELECT source, version FROM price_catalog_imports")
    assert imports == [("genai-prices", genai_catalog.installed_version())]
    [(active, operator)] = await rows(
        fresh_database_url,
        """SELECT count(*) FILTER (WHERE source <> ''), count(*) FILTER (WHERE note = 'operator')
             FROM prices WHERE tenant_id = '' AND retired_at IS NULL""",
    )
    assert (active, operator) == (len(genai_catalog.installed().prices), 1)


def data_file(tmp_path, input_usd: str) -> str:
    """A data file in genai-prices' JSON format: one provider, one model."""
    path = tmp_path / f"data-{input_usd}.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "openai",
                    "name": "OpenAI",
                    "api_pattern": "https://api\\.openai\\.com",
                    "models": [
                        {
                            "id": "gpt-4.1",
                            "match": {"or": [{"equals": "gpt-4.1"}, {"starts_with": "gpt-4.1-2025"}]},
                            "prices": {"input_mtok": input_usd, "output_mtok": "9"},
                        },
                    ],
                }
            ]
        )  # fmt: skip
    )
    return str(path)


async def test_sync_dry_run_file_and_back_keeps_recorded_price_ids(fresh_database_url, tmp_path):
    db = ("--database-url", fresh_database_url)
    async with running_server(fresh_database_url) as server:
        tenant = await create_tenant(server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            u = common_pb2.Usage(input_tokens=1_000_000)
            before = await meter.RecordCall(record(cost_nanos=None, usage=u), metadata=tenant.auth("record"))
            assert before.cost_nanos == 2_000_000_000  # gpt-4.1: $2 per M input

            path = data_file(tmp_path, "3")
            dry = await asyncio.to_thread(
                meter_cli, "prices", "sync", "--dry-run", "--from", path, "--version", "t1", *db
            )
            assert dry.returncode == 0, dry.stderr
            assert "repriced\topenai/gpt-4.1 from 1970-01-01: input 2 -> 3, output 8 -> 9 USD/Mtok" in dry.stdout
            last = dry.stdout.strip().splitlines()[-1]
            assert last.startswith("would add 0, repriced 1, removed ") and last.endswith("(dry run: nothing changed)")
            assert len(await rows(fresh_database_url, "SELECT 1 FROM price_catalog_imports")) == 1

            synced = await asyncio.to_thread(meter_cli, "prices", "sync", "--from", path, "--version", "t1", *db)
            assert synced.returncode == 0, synced.stderr
            assert "shared catalog is now t1" in synced.stdout
            server.prices.invalidate()  # this replica would see it within PriceBook.max_age
            listed = await admin.ListPrices(admin_pb2.ListPricesRequest(provider="openai"), metadata=tenant.auth())
            assert listed.catalog_version == "t1" and [p.model_pattern for p in listed.prices] == ["gpt-4.1"]
            after = await meter.RecordCall(
                record(cost_nanos=None, usage=u, model="gpt-4.1-2025-04-14"), metadata=tenant.auth("record")
            )
            assert after.cost_nanos == 3_000_000_000 and after.price_id != before.price_id
            gone = await meter.RecordCall(record(cost_nanos=None, model="gpt-5"), metadata=tenant.auth("record"))
            assert gone.cost_source == common_pb2.COST_SOURCE_UNPRICED
            local = await meter.RecordCall(record(cost_nanos=None, provider="ollama"), metadata=tenant.auth("record"))
            assert (local.cost_source, local.cost_nanos) == (common_pb2.COST_SOURCE_CATALOG, 0)  # Meter's additions

            calls = await meter.ListCalls(meter_pb2.ListCallsRequest(), metadata=tenant.auth("read"))
            assert {c.call_id: c.price_id for c in calls.calls}[before.call_id] == before.price_id
            [(retired,)] = await rows(
                fresh_database_url, "SELECT retired_at IS NOT NULL FROM prices WHERE id = %s", int(before.price_id[1:])
            )
            assert retired  # kept, so the old call's price_id still names its figures

            back = await asyncio.to_thread(meter_cli, "prices", "sync", *db)
            assert back.returncode == 0, back.stderr
            assert f"shared catalog is now {genai_catalog.installed_version()}" in back.stdout
            server.prices.invalidate()
            again = await meter.RecordCall(record(cost_nanos=None, usage=u), metadata=tenant.auth("record"))
            assert again.cost_nanos == 2_000_000_000
            noop = await asyncio.to_thread(meter_cli, "prices", "sync", "--dry-run", *db)
            assert "would add 0, repriced 0, removed 0" in noop.stdout


async def test_tenant_override_wins_over_a_synced_catalog(fresh_database_url, tmp_path):
    async with running_server(fresh_database_url) as server:
        tenant = await create_tenant(server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            meter, admin = meter_pb2_grpc.MeterStub(channel), admin_pb2_grpc.MeterAdminStub(channel)
            own = admin_pb2.Price(provider="openai", model_pattern="gpt-4.1*", input_nanos_per_mtok=1,
                                  effective_from={"seconds": 0})  # fmt: skip
            await admin.SetPrice(admin_pb2.SetPriceRequest(price=own), metadata=tenant.auth())
            result = await asyncio.to_thread(
                meter_cli, "prices", "sync", "--from", data_file(tmp_path, "5"), "--database-url", fresh_database_url
            )
            assert result.returncode == 0, result.stderr
            server.prices.invalidate()
            reply = await meter.RecordCall(
                record(cost_nanos=None, usage=common_pb2.Usage(input_tokens=1_000_000)), metadata=tenant.auth("record")
            )
            assert reply.cost_nanos == 1  # the tenant's own price, not the synced $5
