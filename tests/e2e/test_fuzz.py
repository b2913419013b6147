"""Fuzzing every RPC of Meter and MeterAdmin on a real server (real port, real PostgreSQL).

Requests are generated from the descriptors (extreme ints, out-of-range timestamps and durations,
NUL, long and non-ASCII strings, huge maps, unknown enum numbers), as hostile mutations of a valid
request, and as raw bytes (random, or a valid message with invalid UTF-8 spliced into a string).
They go through a generic channel call with identity serializers, so whatever the bytes are reaches
the server. Asserted for every one: never INTERNAL or UNKNOWN; a rejected request changes nothing
of the tenant's state; health stays SERVING. And RecordCalls batches mixing valid and hostile items
record every valid item exactly once.

Seeded (derandomized) with a small example count for CI; `make fuzz` runs more
(METER_FUZZ_EXAMPLES, per RPC) and prints the counts by status code.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import uuid

import grpc
import psycopg
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meter.v1 import admin_pb2, common_pb2, meter_pb2, meter_pb2_grpc
from meter_testing.clock import FakeClock
from meter_testing.fixtures import create_tenant, running_server
from meter_testing.requests import check, limit, record

EXAMPLES = int(os.environ.get("METER_FUZZ_EXAMPLES", "20"))  # per RPC; about 20 s in all
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# The tenant's state a rejected request must leave alone (background tasks touch none of it here:
# the sweeper is off and the server's clock stands still).
STATE_TABLES = ("limits", "counters", "reservations", "calls", "prices", "alert_rules", "api_keys", "usage_hourly",
                "label_dimensions", "model_equivalences")  # fmt: skip
# A key's last_used_at is written in the background for any authenticated call, rejected or not (the
# key was used): the only column a rejected request may change.
SNAPSHOT = "SELECT " + ", ".join(
    f"(SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'last_used_at')::text, ',' "
    f"ORDER BY (to_jsonb(t) - 'last_used_at')::text)), '') "
    f"FROM {table} t WHERE tenant_id = %(t)s)"
    for table in STATE_TABLES
)

METHODS = [
    (f"/{service.full_name}/{method.name}", method)
    for service in (
        meter_pb2.DESCRIPTOR.services_by_name["Meter"],
        admin_pb2.DESCRIPTOR.services_by_name["MeterAdmin"],
    )
    for method in service.methods
]
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def _valid(method):
    """A valid request of each RPC, for mutations that get past the required fields."""
    now = dt.datetime.now(dt.UTC)  # any-date: valid requests near the server's clock, on any day
    cls = message_factory.GetMessageClass(method.input_type)
    return {
        "CheckQuota": lambda: check(reservation_id=uuid.uuid4().hex),
        "RecordCall": lambda: record(),
        "RecordCalls": lambda: meter_pb2.RecordCallsRequest(calls=[record(), record()]),
        "ExtendReservation": lambda: meter_pb2.ExtendReservationRequest(reservation_id="r-1"),
        "ReleaseReservation": lambda: meter_pb2.ReleaseReservationRequest(reservation_id="r-1"),
        "GetUsage": lambda: meter_pb2.GetUsageRequest(
            group_by=[meter_pb2.GROUP_BY_MODEL], limit=10, include_limits=True
        ),
        "ListCalls": lambda: meter_pb2.ListCallsRequest(page_size=5),
        "StreamAlerts": lambda: meter_pb2.StreamAlertsRequest(since_id=0),
        "SetLimit": lambda: admin_pb2.SetLimitRequest(limit=limit("fz", max=100)),
        "GetLimit": lambda: admin_pb2.GetLimitRequest(id="fz"),
        "DeleteLimit": lambda: admin_pb2.DeleteLimitRequest(id="fz-none"),
        "SetPrice": lambda: admin_pb2.SetPriceRequest(
            price=admin_pb2.Price(
                provider="fz", model_pattern=uuid.uuid4().hex, effective_from={"seconds": 1}, input_nanos_per_mtok=1
            )  # fmt: skip
        ),
        "ListPrices": lambda: admin_pb2.ListPricesRequest(provider="openai"),
        "LoadPrices": lambda: admin_pb2.LoadPricesRequest(),
        "RepriceCalls": lambda: admin_pb2.RepriceCallsRequest(
            start={"seconds": int(now.timestamp()) - 3600}, end={"seconds": int(now.timestamp())}
        ),
        "SetAlertRule": lambda: admin_pb2.SetAlertRuleRequest(
            rule=admin_pb2.AlertRule(
                id="fz", kind=common_pb2.ALERT_KIND_CALL_COST, severity=common_pb2.SEVERITY_INFO, amount_nanos=1
            )
        ),
        "ListAlertRules": lambda: admin_pb2.ListAlertRulesRequest(),
        "DeleteAlertRule": lambda: admin_pb2.DeleteAlertRuleRequest(id="fz-none"),
        "CreateApiKey": lambda: admin_pb2.CreateApiKeyRequest(name="fz", roles=[admin_pb2.ROLE_READ]),
        "ListApiKeys": lambda: admin_pb2.ListApiKeysRequest(),
        "RevokeApiKey": lambda: admin_pb2.RevokeApiKeyRequest(id="nonexistent1"),
        "SetModelEquivalence": lambda: admin_pb2.SetModelEquivalenceRequest(
            name="fz", models=["openai/gpt-4.1", "anthropic/claude-haiku-4-5"]
        ),
        "DeleteModelEquivalence": lambda: admin_pb2.DeleteModelEquivalenceRequest(name="fz-none"),
    }.get(method.name, cls)()


# ---- strategies ------------------------------------------------------------------------------------

_EDGE_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63), 10**8, 10**8 + 1, 4 * 10**15 + 1, 10**18 + 1]
_EDGE_SECONDS = [-62135596800, -1, 0, 1_700_000_000, 32_503_680_000, 253402300799, 253402300800, 2**62, -(2**62)]
_EDGE_NANOS = [0, -1, 1, 999_999_999, 10**9, -(10**9), 2**31 - 1, -(2**31)]
_TEXT = st.one_of(
    st.sampled_from(["", " ", "a", "\0", "a\0b", "x" * 5000, "é" * 300, "mk_", "gpt-4.1", "v" * 257, "\U0001f600"]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30),
)
_INT_RANGES = {
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
}


def _int(field) -> st.SearchStrategy[int]:
    wide = "int32" if field.type in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32) else "int64"
    edges = [i for i in _EDGE_INTS if (-(2**31) <= i < 2**31 or wide == "int64")]
    return st.one_of(st.sampled_from(edges), _INT_RANGES[wide])


def _scalar(draw, field):
    if field.type == field.TYPE_STRING:
        return draw(_TEXT)
    if field.type == field.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == field.TYPE_ENUM:
        return draw(st.one_of(st.sampled_from(list(field.enum_type.values_by_number)), st.integers(-5, 50)))
    if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return draw(st.one_of(st.sampled_from([float("nan"), float("inf"), -1.0, 0.5, 2.0]), st.floats()))
    return draw(_int(field))


def _fill(draw, msg, depth: int) -> None:
    name = msg.DESCRIPTOR.full_name
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        msg.seconds = draw(st.one_of(st.sampled_from(_EDGE_SECONDS), st.integers(-(2**63), 2**63 - 1)))
        msg.nanos = draw(st.one_of(st.sampled_from(_EDGE_NANOS), st.integers(-(2**31), 2**31 - 1)))
        return
    for field in msg.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        _set(draw, msg, field, depth)


def _set(draw, msg, field, depth: int) -> None:
    target = getattr(msg, field.name)
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    if is_map:
        size = draw(st.sampled_from([1, 3, 17, 2000]))
        keys = [draw(_TEXT) for _ in range(min(size, 5))] + [f"k{i}" for i in range(size - 5)]
        for key in keys:
            target[key] = draw(_TEXT)
    elif field.is_repeated:
        count = draw(st.sampled_from([0, 1, 2, 3, 1001])) if field.message_type is None else draw(st.integers(0, 3))
        for _ in range(count):
            if field.message_type is None:
                target.append(_scalar(draw, field))
            elif depth < 3:
                _fill(draw, target.add(), depth + 1)
    elif field.message_type is not None:
        if depth < 3:
            _fill(draw, target, depth + 1)
            if not target.ListFields():
                target.SetInParent()
    else:
        setattr(msg, field.name, _scalar(draw, field))


@st.composite
def requests(draw, method):
    cls = message_factory.GetMessageClass(method.input_type)
    mode = draw(st.sampled_from(["generated", "mutated", "mutated", "valid", "raw", "bad-utf8"]))
    if not method.input_type.fields:
        mode = draw(st.sampled_from(["generated", "raw"]))
    msg = _valid(method) if mode != "generated" else cls()
    if mode == "generated":
        _fill(draw, msg, 0)
    elif mode == "mutated":  # one to three hostile fields on a valid request
        for field in draw(st.lists(st.sampled_from(list(msg.DESCRIPTOR.fields)), min_size=1, max_size=3)):
            msg.ClearField(field.name)
            _set(draw, msg, field, 1)
    raw = msg.SerializeToString()
    if mode == "raw":
        return draw(st.one_of(st.binary(max_size=64), st.just(raw[: len(raw) // 2] + b"\xff\xff\xff")))
    if mode == "bad-utf8":
        strings = [f for f in msg.DESCRIPTOR.fields if f.type == f.TYPE_STRING and not f.is_repeated]
        if strings:
            field = draw(st.sampled_from(strings))
            tag = (field.number << 3) | 2
            return raw + _varint(tag) + b"\x02\xc3\x28"  # a later occurrence of a field wins
    return raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ---- the test --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def fuzz_server(postgres):
    url = postgres.create_database()
    try:
        # A stopped clock: no reservation a fuzzed request made can expire while a later one runs (an
        # expiry noticed by a rejected ExtendReservation would be a legitimate change of state).
        clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))  # any-date: a stopped clock
        async with running_server(url, clock=clock, sweep_interval=3600) as server:
            yield server, url, await create_tenant(server)
    finally:
        postgres.drop_database(url)


def _code(channel, path: str, method, raw: bytes, auth) -> grpc.StatusCode:
    if method.server_streaming:
        call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        # An accepted stream with nothing to replay waits for its first heartbeat: the deadline ends it.
        stream = call(raw, metadata=auth, timeout=0.2)
        try:
            next(stream)  # an accepted stream runs forever: its first message (or heartbeat) is enough
        except StopIteration:
            return grpc.StatusCode.OK
        except grpc.RpcError as err:
            return grpc.StatusCode.OK if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED else err.code()
        stream.cancel()
        return grpc.StatusCode.OK
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        call(raw, metadata=auth, timeout=30)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _fuzz(port: int, url: str, tenant, path: str, method, examples: int) -> None:
    auth = tenant.auth()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, psycopg.connect(url, autocommit=True) as db:

        def snapshot():
            return db.execute(SNAPSHOT, {"t": tenant.id}).fetchone()

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(raw=requests(method))
        def one(raw: bytes) -> None:
            before = snapshot()
            code = _code(channel, path, method, raw, auth)
            COUNTS[path][code.name] += 1
            assert code not in FORBIDDEN, (path, raw[:200])
            if code != grpc.StatusCode.OK:
                assert snapshot() == before, (path, code, raw[:200])

        one()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("path", "method"), METHODS, ids=[p.rsplit("/", 1)[-1] for p, _ in METHODS])
async def test_fuzz_rpc(fuzz_server, path, method):
    server, url, tenant = fuzz_server
    # Hypothesis drives sync calls, so it runs in a thread while this loop serves them.
    await asyncio.to_thread(_fuzz, server.port, url, tenant, path, method, EXAMPLES)


@st.composite
def batches(draw):
    """RecordCalls items, each valid (a fresh call_id) or a valid record with hostile fields."""
    items, valid = [], []
    for _ in range(draw(st.integers(1, 12))):
        item = record()
        if draw(st.booleans()):
            valid.append(item.call_id)
        else:
            for field in draw(st.lists(st.sampled_from(list(item.DESCRIPTOR.fields)), min_size=1, max_size=3)):
                item.ClearField(field.name)
                _set(draw, item, field, 1)
        items.append(item)
    return items, valid


def _fuzz_batches(port: int, url: str, tenant, examples: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, psycopg.connect(url, autocommit=True) as db:
        stub = meter_pb2_grpc.MeterStub(channel)

        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(batch=batches())
        def one(batch) -> None:
            items, valid = batch
            reply = stub.RecordCalls(meter_pb2.RecordCallsRequest(calls=items), metadata=tenant.auth(), timeout=30)
            assert [r.index for r in reply.results] == list(range(len(items)))
            by_id = {item.call_id: r for item, r in zip(items, reply.results, strict=True)}
            for call_id in valid:
                assert by_id[call_id].error_code == "" and not by_id[call_id].response.duplicate
            assert reply.recorded + reply.duplicates + reply.failed == len(items)
            rows = db.execute(
                "SELECT call_id, count(*) FROM calls WHERE tenant_id = %s AND call_id = ANY(%s) GROUP BY call_id",
                (tenant.id, valid),
            ).fetchall()
            assert sorted(rows) == sorted((call_id, 1) for call_id in valid)  # every valid item, exactly once

        one()


async def test_fuzz_record_calls_batches_record_every_valid_item_once(fuzz_server):
    server, url, tenant = fuzz_server
    await asyncio.to_thread(_fuzz_batches, server.port, url, tenant, EXAMPLES)


def test_fuzz_report():
    """Prints the counts by status code (shown with -s, as `make fuzz` does)."""
    total = collections.Counter()
    for path, counts in sorted(COUNTS.items()):
        total.update(counts)
        print(f"{path:45} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"{'total':45} " + " ".join(f"{k}={v}" for k, v in sorted(total.items())))
    assert not FORBIDDEN & {grpc.StatusCode[k] for k in total}
