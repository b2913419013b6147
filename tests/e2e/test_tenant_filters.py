"""Every statement Meter runs filters by tenant (issue 15, deliverable 5; docs/scaling.md, "Every statement
filters by tenant"): what lets a distributed PostgreSQL (Citus, by tenant_id) send each statement to
one node.

The statements are the real ones: every statement a real server sends through psycopg while it serves
every RPC of both services and runs its background loops (captured at psycopg's cursor, in this
process), plus the body of every SQL function and trigger in the migrated schema (pg_proc), since
those statements never cross psycopg. A statement that touches a per-tenant table must constrain
tenant_id: by equality (`tenant_id = %s`, `= ANY`, `IN`), in a row comparison (`(tenant_id, id) =
(...)`), a join `USING (tenant_id, ...)`, or, for an INSERT, by naming tenant_id among its columns.
The few statements that legitimately span tenants are declared below with the reason, and nowhere
else."""

from __future__ import annotations

import datetime as dt
import re

import grpc
import psycopg
import pytest
from integration.test_schema_invariants import REFERENCE_TABLES, TABLES
from psycopg import sql

from e2e.test_fuzz import METHODS, _valid
from meter.v1 import admin_pb2, meter_pb2
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, limit, record
from meter_testing.waiting import eventually
from meterd.store.migrate import migrate

pytestmark = pytest.mark.slow

# (what, a pattern found in the statement, why it may span tenants). Each must match something the
# run saw, so the list cannot keep excuses for statements that are gone.
CROSS_TENANT = [
    (
        "alert evaluator's rule scan",
        r"from\s+alert_rules\s+where\s+not\s+disabled\s+and\s+kind\s*=\s*any",
        "the evaluator's leader lists the enabled periodic rules of every tenant, then works tenant by tenant",
    ),
    (
        "alert stream replay",
        r"max\(id\).*\bfrom\s+alerts\b|from\s+alerts\b.*\bid\s*>",
        "the alert hub reads new alerts of every tenant once per replica and fans them out to each stream by tenant",
    ),
    (
        "global price catalog imports",
        r"^insert\s+into\s+price_catalog_imports\s*\(source,",
        "the shared catalog's import history, kept under tenant '' (the column's default): a reference "
        "table's rows in a distributed layout, written by `meter prices sync` and LoadPrices",
    ),
]

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_TABLE = re.compile(r"\b(?:from|join|into|update)\s+(?:only\s+)?([a-z_][a-z0-9_]*)\b")
_TENANT_PREDICATE = re.compile(
    r"\btenant_id\s*(?:=|\bin\b)"  # tenant_id = %s, = ANY(...), IN (...)
    r"|(?:=|\bin\b)\s*\(?\s*(?:\w+\.)?tenant_id\b"  # ... = x.tenant_id
    r"|\(\s*(?:\w+\.)?tenant_id\s*,[^()]*\)\s*(?:=|\bin\b)"  # (x.tenant_id, x.id) = (...)
    r"|\busing\s*\(\s*tenant_id\b"  # JOIN ... USING (tenant_id, ...)
    r"|\binsert\s+into\s+\w+(?:\s+as\s+\w+)?\s*\([^)]*\btenant_id\b"  # INSERT INTO t (tenant_id, ...)
)


def normalise(statement: str) -> str:
    """Lower case, without comments, with string literals emptied (their words are not SQL)."""
    return " ".join(_STRING.sub("''", _COMMENT.sub(" ", statement)).lower().split())


def untenanted(statement: str, tenant_tables: set[str]) -> set[str]:
    """The per-tenant tables a statement touches without constraining tenant_id (empty: it is fine)."""
    text = normalise(statement)
    touched = {t for t in _TABLE.findall(text) if t in tenant_tables}
    if not touched or _TENANT_PREDICATE.search(text):
        return set()
    return touched


def function_statements(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(function, statement) for each statement in the bodies of the schema's SQL and PL/pgSQL
    functions (triggers included): split at semicolons, so control flow stays with its statement."""
    rows = conn.execute(
        """SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'public'::regnamespace AND l.lanname IN ('sql', 'plpgsql')"""
    ).fetchall()
    return [(name, part) for name, body in rows for part in _COMMENT.sub(" ", body).split(";") if part.strip()]


@pytest.fixture
def captured(monkeypatch) -> list[str]:
    """The text of every statement any async psycopg cursor of this process sends from now on."""
    seen: list[str] = []
    execute, executemany = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany

    def text(cursor, query) -> str:
        if isinstance(query, sql.Composable):
            return query.as_string(cursor.connection)
        return query.decode() if isinstance(query, bytes) else str(query)

    async def capture_execute(self, query, params=None, **kwargs):
        seen.append(text(self, query))
        return await execute(self, query, params, **kwargs)

    async def capture_executemany(self, query, params_seq, **kwargs):
        seen.append(text(self, query))
        return await executemany(self, query, params_seq, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", capture_execute)
    monkeypatch.setattr(psycopg.AsyncCursor, "executemany", capture_executemany)
    return seen


async def _call(channel: grpc.aio.Channel, path: str, method, request, auth) -> None:
    """One RPC; its outcome does not matter here, only the statements it made the server run."""
    if method.server_streaming:
        call = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString())
        try:
            async for _ in call(request, metadata=auth, timeout=0.5):
                break
        except grpc.aio.AioRpcError:
            pass
        return
    call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString())
    try:
        await call(request, metadata=auth, timeout=30)
    except grpc.aio.AioRpcError:
        pass


def _workload(now: dt.datetime) -> list[tuple[str, object]]:
    """Beyond one valid request per RPC: the paths that run different SQL (sliding and per-subject
    limits, a client-chosen reservation settled, extended and released, duplicates, the GetUsage
    groupings and filters, call search)."""
    start, end = {"seconds": int(now.timestamp()) - 86400}, {"seconds": int(now.timestamp()) + 60}
    usage = [
        meter_pb2.GetUsageRequest(start=start, end=end, group_by=groups, limit=5, include_projection=True)
        for groups in ([meter_pb2.GROUP_BY_SUBJECT], [meter_pb2.GROUP_BY_MODEL, meter_pb2.GROUP_BY_TIME], [])
    ]
    return [
        ("SetLimit", admin_pb2.SetLimitRequest(limit=limit("slide", window="SLIDING", seconds=60, max=10**6))),
        ("SetLimit", admin_pb2.SetLimitRequest(limit=limit("per-user", max=10**6, partition="PER_SUBJECT"))),
        ("CheckQuota", check(reservation_id="res-1")),
        ("CheckQuota", check(reservation_id="res-1")),  # a retry: the existing reservation
        ("CheckQuota", check(mode="CHECK_ONLY")),
        ("ExtendReservation", meter_pb2.ExtendReservationRequest(reservation_id="res-1")),
        ("RecordCall", record("call-1", reservation_id="res-1")),
        ("RecordCall", record("call-1", reservation_id="res-1")),  # a duplicate
        ("CheckQuota", check(reservation_id="res-2")),
        ("ReleaseReservation", meter_pb2.ReleaseReservationRequest(reservation_id="res-2")),
        ("RecordCalls", meter_pb2.RecordCallsRequest(calls=[record(), record(labels={"bot": "b1"})])),
        *(("GetUsage", u) for u in usage),
        ("ListCalls", meter_pb2.ListCallsRequest(page_size=1, start=start, end=end)),
    ]


async def test_every_statement_meter_runs_filters_by_tenant(fresh_database_url, captured):
    await migrate(fresh_database_url)
    captured.clear()  # migrations create the schema: they are not statements of a running Meter
    with psycopg.connect(fresh_database_url) as conn:
        tables = dict(conn.execute(TABLES).fetchall())
        functions = function_statements(conn)
    tenant_tables = {t for t, has_tenant in tables.items() if has_tenant and t not in REFERENCE_TABLES}

    # Short loops: the sweeper, the alert evaluator and the key-use writer run during the workload.
    async with running_server(fresh_database_url, sweep_interval=0.2, alert_eval_interval=0.2,
                              key_last_used_interval=0.2) as server:  # fmt: skip
        tenant = await create_tenant(server)
        auth = tenant.auth()
        by_name = {path.rsplit("/", 1)[-1]: (path, method) for path, method in METHODS}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for path, method in METHODS:
                await _call(channel, path, method, _valid(method), auth)
            for name, request in _workload(dt.datetime.now(dt.UTC)):  # any-date: requests near the server's clock
                await _call(channel, *by_name[name], request, auth)
        ran = len(captured)
        await eventually(
            lambda: len(captured) > ran + 3, what="the background loops to run"
        )  # background loops went round

    statements = [("psycopg", s) for s in dict.fromkeys(captured)] + functions
    excused = {what: 0 for what, _, _ in CROSS_TENANT}
    offending = []
    for source, statement in statements:
        touched = untenanted(statement, tenant_tables)
        if not touched:
            continue
        text = normalise(statement)
        what = next((w for w, pattern, _ in CROSS_TENANT if re.search(pattern, text)), None)
        if what is None:
            offending.append(f"{source}: {sorted(touched)}: {text[:300]}")
        else:
            excused[what] += 1
    assert not offending, "statements touching per-tenant tables without a tenant_id filter:\n" + "\n".join(offending)
    assert all(excused.values()), f"declared cross-tenant statements no longer seen: {excused}"
    assert len(captured) > 50 and len(functions) > 50  # the capture saw the server's statements at all


def test_the_check_catches_a_statement_without_tenant():
    tables = {"calls", "reservations"}
    assert untenanted("SELECT subject FROM calls WHERE call_id = %s", tables) == {"calls"}
    assert untenanted("SELECT tenant_id, subject FROM calls WHERE call_id = %s", tables) == {"calls"}
    assert untenanted("UPDATE reservations SET state = 'x' -- tenant_id = %s\n WHERE id = %s", tables)
    assert not untenanted("SELECT subject FROM calls WHERE tenant_id = %s AND call_id = %s", tables)
    assert not untenanted("SELECT 1 FROM reservations r WHERE (r.tenant_id, r.id) = (%s, %s)", tables)
    assert not untenanted("INSERT INTO calls (tenant_id, call_id) VALUES (%s, %s)", tables)
    assert not untenanted("SELECT 1 FROM api_keys WHERE key_hash = %s", tables)  # a reference table
