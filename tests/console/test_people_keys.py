"""`meter keys` through the Admin API (no --tenant, an admin key) against the real server: list,
create and revoke, in every format; and what the command says when neither form is chosen."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest

from meter.v1 import admin_pb2
from meterd.cli import main

from .test_people_cli import _conn, run


async def test_keys_list_create_revoke_through_the_api(meter_env, capsys):
    _, tenant, _, admin = meter_env
    conn = _conn(meter_env, "admin")
    secret = (await run(capsys, "keys", "create", *conn, "--role", "read", "--role", "record", "--name", "cli made",
                        "--expires-in", "30d")).strip()  # fmt: skip
    assert secret.startswith("mk_") and "\n" not in secret
    key_id = secret.split("_")[1]
    stored = {k.id: k for k in (await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=tenant.auth())).keys}
    assert stored[key_id].name == "cli made" and stored[key_id].expire_time.seconds > 0
    assert sorted(stored[key_id].roles) == [admin_pb2.ROLE_RECORD, admin_pb2.ROLE_READ]

    table = (await run(capsys, "keys", "list", *conn)).splitlines()
    header = table[1] if table[0].startswith("─") or not table[0].strip() else table[0]
    assert "id" in header and "roles" in header and "last used" in header
    row = next(line for line in table if key_id in line)
    assert "record,read" in row and "cli made" in row and "active" in row
    rows = json.loads(await run(capsys, "keys", "list", *conn, "--format", "json"))
    assert {r["id"] for r in rows} == set(stored)
    mine = next(r for r in rows if r["id"] == key_id)
    assert mine["roles"] == "record,read" and mine["expires"].endswith("Z") and mine["bound_to"] == "-"
    parsed = list(csv.DictReader(io.StringIO(await run(capsys, "keys", "list", *conn, "--format", "csv"))))
    assert {r["id"] for r in parsed} == set(stored)
    markdown = await run(capsys, "keys", "list", *conn, "--format", "markdown")
    assert markdown.startswith("|") and key_id in markdown

    assert (await run(capsys, "keys", "revoke", *conn, key_id)).strip() == f"revoked {key_id}"
    assert key_id not in await run(capsys, "keys", "list", *conn)
    revoked = next(r for r in json.loads(await run(capsys, "keys", "list", *conn, "--all", "--format", "json"))
                   if r["id"] == key_id)  # fmt: skip
    assert revoked["state"].startswith("revoked ")

    created = json.loads(await run(capsys, "keys", "create", *conn, "--role", "read", "--format", "json"))
    assert created[0]["secret"].startswith(f"mk_{created[0]['id']}_")


async def test_keys_through_the_api_need_an_admin_key(meter_env, capsys):
    with pytest.raises(SystemExit) as done:
        await asyncio.to_thread(main, ["keys", "list", *_conn(meter_env, "read")])
    assert "PERMISSION_DENIED" in str(done.value.code)


def test_keys_without_tenant_or_key_say_both_forms(monkeypatch):
    monkeypatch.delenv("METER_API_KEY", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["keys", "list", "--address", "127.0.0.1:1"])
    assert "--tenant (directly in the database)" in str(done.value.code)
    assert "--api-key / METER_API_KEY" in str(done.value.code)
