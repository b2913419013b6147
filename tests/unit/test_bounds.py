"""The bounds table covers every request field, and the generic walk applies it."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from meter.v1 import admin_pb2, common_pb2, meter_pb2
from meterd.api.validation import bound_of, check, violations
from meterd.domain import bounds
from meterd.domain.errors import InvalidArgument
from meterd.domain.pricing import TOKENS_PER_MTOK

SERVICES = (
    meter_pb2.DESCRIPTOR.services_by_name["Meter"],
    admin_pb2.DESCRIPTOR.services_by_name["MeterAdmin"],
)
WELL_KNOWN_TIME = {"google.protobuf.Timestamp"}


def _request_fields():
    seen, out = set(), []

    def walk(message):
        if message.full_name in seen:
            return
        seen.add(message.full_name)
        for field in message.fields:
            out.append((message, field))
            if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                if not field.message_type.full_name.startswith("google.protobuf."):
                    walk(field.message_type)

    for service in SERVICES:
        for method in service.methods:
            walk(method.input_type)
    return out


def test_every_request_field_has_a_bound():
    missing = []
    for message, field in _request_fields():
        bound = bound_of(message.full_name, field.name)
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if field.is_repeated:
            if not isinstance(bound, bounds.Items) or (is_map and not (bound.key and bound.value)):
                missing.append(f"{message.name}.{field.name}")
            continue
        if field.type in (field.TYPE_BOOL, field.TYPE_ENUM):
            continue  # enums: any declared value (checked generically)
        if field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.Duration" and not isinstance(bound, bounds.Span):
                missing.append(f"{message.name}.{field.name}")
            continue  # Timestamps: the generic range; messages: walked
        if bound is None:
            missing.append(f"{message.name}.{field.name}")
    assert missing == []


def test_no_stale_entries():
    known = {(m.name, f.name) for m, f in _request_fields()}
    stale = [(m, f) for m, table in bounds.FIELDS.items() for f in table if (m, f) not in known]
    assert stale == []


def test_catalog_cost_of_one_call_stays_under_the_call_cost_bound():
    tokens = 4 * bounds.MAX_TOKENS * bounds.MAX_NANOS_PER_MTOK // TOKENS_PER_MTOK
    others = (bounds.MAX_REQUESTS + bounds.MAX_UNITS) * bounds.MAX_NANOS_PER_REQUEST
    assert tokens + others <= bounds.MAX_CALL_COST_NANOS
    assert bounds.MAX_BATCH_CALLS * bounds.MAX_CALL_COST_NANOS < bounds.INT64_MAX  # one batch's delta
    assert 86_400 * 100_000 * bounds.MAX_TOKENS < bounds.INT64_MAX  # a day's rollup row at 1e5 calls/s


def _paths(msg) -> set[str]:
    return {f for f, _ in violations(msg)}


def test_extreme_numbers_times_and_durations():
    msg = meter_pb2.RecordCallRequest(
        call_id="c",
        subject="s",
        provider="p",
        model="m",
        usage=common_pb2.Usage(input_tokens=2**63 - 1, requests=-1),
        latency=duration_pb2.Duration(seconds=2**62),
        time_to_first_token=duration_pb2.Duration(seconds=1, nanos=-5),
        occurred_at=timestamp_pb2.Timestamp(seconds=1, nanos=-1),
        retry_count=-1,
    )
    assert _paths(msg) == {
        "usage.input_tokens",
        "usage.requests",
        "latency",
        "time_to_first_token",
        "occurred_at",
        "retry_count",
    }


def test_strings_maps_enums_and_required():
    msg = meter_pb2.CheckQuotaRequest(subject=" ", provider="p\0", model="m" * 129, labels={"k" * 65: "v"})
    msg.mode = 42
    assert _paths(msg) == {"subject", "provider", "model", "labels[" + "k" * 64 + "...]", "mode"}
    assert violations(meter_pb2.CheckQuotaRequest(subject="s", provider="p", model="m")) == []


def test_nested_and_repeated_messages_get_indexed_paths():
    msg = admin_pb2.LoadPricesRequest(prices=[admin_pb2.Price(), admin_pb2.Price(note="\0")])
    assert _paths(msg) == {"prices[1].note"}
    assert _paths(meter_pb2.RecordCallsRequest()) == {"calls"}
    # RecordCalls items are checked by the handler one by one.
    assert _paths(meter_pb2.RecordCallsRequest(calls=[meter_pb2.RecordCallRequest(retry_count=-1)])) == set()


def test_non_finite_doubles_are_refused():
    for value in (float("nan"), float("inf"), 1.5):
        assert _paths(admin_pb2.AlertRule(error_rate=value)) == {"error_rate"}


def test_error_lists_and_messages_are_bounded():
    with pytest.raises(InvalidArgument) as err:
        check(admin_pb2.LoadPricesRequest(prices=[admin_pb2.Price(note="\0" * 2000) for _ in range(100)]))
    assert len(err.value.violations) == bounds.MAX_VIOLATIONS + 1
    assert err.value.violations[-1] == ("...", "and 80 more violations")
    assert len(str(err.value)) < 4096
    long = InvalidArgument([("f" * 10_000, "d" * 10_000)])
    assert len(long.violations[0][0]) < 200 and len(long.violations[0][1]) < 500


def test_quote_escapes_and_cuts():
    assert bounds.quote("a\0b") == "a\\x00b"
    assert bounds.quote("x" * 100, 10) == "x" * 10 + "..."


def test_bounds_agree_with_the_domain_and_service_constants():
    from meterd.domain import calls, limits
    from meterd.domain import price_versions as prices
    from meterd.service import metering, quota

    assert bounds.MAX_BATCH_CALLS == metering.MAX_BATCH
    assert bounds.MAX_LOAD_PRICES == prices.MAX_LOAD
    assert bounds.ID == calls.MAX_ID == quota.MAX_RESERVATION_ID == prices.MAX_PRICE_NAME
    assert bounds.SUBJECT == calls.MAX_SUBJECT == calls.MAX_LABEL_VALUE == limits.MAX_SELECTOR_FIELD
    assert (bounds.NAME, bounds.MAX_LABELS) == (calls.MAX_LABEL_KEY, calls.MAX_LABELS)
    assert bounds.TEXT == limits.MAX_DESCRIPTION == prices.MAX_PRICE_NOTE
