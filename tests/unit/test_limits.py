"""Unit tests for meterd.domain.limits."""

from __future__ import annotations

from enum import EnumMeta
from typing import Any

import pytest

from meter.v1 import common_pb2
from meterd.domain.errors import InvalidArgument
from meterd.domain.limits import (
    Limit,
    LimitAction,
    Metric,
    Partition,
    Selector,
    Usage,
    matching,
    partition_key,
    validate_limit,
)
from meterd.domain.windows import MAX_FIXED_SECONDS, WindowKind, WindowSpec

CALL: dict[str, Any] = {
    "subject": "team:search/user:42",
    "provider": "openai",
    "model": "gpt-4.1",
    "operation": "chat",
    "labels": {"feature": "search", "bot": "helper"},
}


def call(**changes: Any) -> dict[str, Any]:
    return {**CALL, **changes}


# ------------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("enum", "proto_enum", "prefix"),
    [
        (Metric, "Metric", "METRIC_"),
        (WindowKind, "WindowKind", "WINDOW_KIND_"),
        (LimitAction, "LimitAction", "LIMIT_ACTION_"),
        (Partition, "Partition", "PARTITION_"),
    ],
)
def test_enums_mirror_the_proto(enum: EnumMeta, proto_enum: str, prefix: str) -> None:
    # The API layer maps by name, so every proto value except UNSPECIFIED needs a domain twin.
    names = [v.name for v in common_pb2.DESCRIPTOR.enum_types_by_name[proto_enum].values]
    expected = [n.removeprefix(prefix).lower() for n in names if not n.endswith("_UNSPECIFIED")]
    assert [m.value for m in enum] == expected  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- Selector


@pytest.mark.parametrize(
    ("selector", "changes", "matches"),
    [
        (Selector(), {}, True),
        (Selector(), {"subject": "", "operation": "", "labels": {}}, True),
        # subject: exact
        (Selector(subject="team:search/user:42"), {}, True),
        (Selector(subject="team:search/user:42"), {"subject": "team:search/user:420"}, False),
        (Selector(subject="team:search/"), {}, False),  # exact is not a prefix
        # subject: prefix
        (Selector(subject_prefix="team:search/"), {}, True),
        (Selector(subject_prefix="team:search/"), {"subject": "team:search/"}, True),
        (Selector(subject_prefix="team:search/"), {"subject": "team:searchx/user:1"}, False),
        (Selector(subject_prefix="team:search/"), {"subject": "team:ads/user:42"}, False),
        # provider: case-insensitive both ways
        (Selector(provider="OpenAI"), {}, True),
        (Selector(provider="openai"), {"provider": "OPENAI"}, True),
        (Selector(provider="openai"), {"provider": "anthropic"}, False),
        # model and operation: exact
        (Selector(model="gpt-4.1"), {}, True),
        (Selector(model="gpt-4.1"), {"model": "gpt-4.1-mini"}, False),
        (Selector(model="gpt-4"), {}, False),
        (Selector(operation="chat"), {}, True),
        (Selector(operation="chat"), {"operation": "embedding"}, False),
        (Selector(operation="chat"), {"operation": ""}, False),
        # labels: the selector's pairs must be a subset of the call's
        (Selector(labels=(("feature", "search"),)), {}, True),
        (Selector(labels=(("feature", "search"), ("bot", "helper"))), {}, True),
        (Selector(labels=(("feature", "search"),)), {"labels": {"feature": "ads"}}, False),
        (Selector(labels=(("feature", "search"),)), {"labels": {}}, False),
        (Selector(labels=(("feature", "search"), ("bot", "other"))), {}, False),
        (Selector(labels=(("feature", ""),)), {"labels": {}}, False),  # an empty value is still a value
        (Selector(labels=(("feature", ""),)), {"labels": {"feature": ""}}, True),
        # every set field must match
        (
            Selector(
                subject_prefix="team:",
                provider="OPENAI",
                model="gpt-4.1",
                operation="chat",
                labels=(("bot", "helper"),),
            ),
            {},
            True,
        ),
        (Selector(subject_prefix="team:", provider="openai", model="o3"), {}, False),
    ],
)
def test_selector_matches(selector: Selector, changes: dict[str, Any], matches: bool) -> None:
    assert selector.matches(**call(**changes)) is matches


def test_selector_labels_are_order_independent() -> None:
    a = Selector(labels=(("b", "2"), ("a", "1")))
    assert a == Selector(labels=(("a", "1"), ("b", "2")))
    assert a.labels == (("a", "1"), ("b", "2"))


@pytest.mark.parametrize(
    ("selector", "data"),
    [
        (Selector(), {}),
        (Selector(subject="u:1"), {"subject": "u:1"}),
        (
            Selector(subject_prefix="team:", provider="openai", model="m", operation="chat", labels=(("k", "v"),)),
            {"subject_prefix": "team:", "provider": "openai", "model": "m", "operation": "chat", "labels": {"k": "v"}},
        ),
    ],
)
def test_selector_json_round_trip(selector: Selector, data: dict[str, Any]) -> None:
    assert selector.to_json() == data
    assert Selector.from_json(data) == selector
    assert Selector.from_json(selector.to_json()) == selector


def test_selector_from_json_tolerates_explicit_empties() -> None:
    assert Selector.from_json({"subject": "", "labels": None}) == Selector()


def test_selector_from_json_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="region"):
        Selector.from_json({"region": "eu"})


# ------------------------------------------------------------------------------- validate_limit

VALID: dict[str, Any] = {"id": "daily-budget", "metric": "cost_nanos", "window_kind": "day", "max": 1_000}


def test_validate_limit_minimal_applies_defaults() -> None:
    limit = validate_limit(**VALID)
    assert limit == Limit(
        id="daily-budget",
        selector=Selector(),
        metric=Metric.COST_NANOS,
        window=WindowSpec(WindowKind.DAY),
        max=1_000,
        partition=Partition.SHARED,
        action=LimitAction.DENY,
    )


def test_validate_limit_full() -> None:
    limit = validate_limit(
        id="team.search:tokens_v2",
        metric="TOTAL_TOKENS",
        window_kind="sliding",
        window_seconds=3600,
        max=50_000,
        selector=Selector(subject_prefix="team:search/", provider=" OpenAI ", labels=(("feature", "x"),)),
        partition="per_subject",
        action="warn",
        description="search team hourly tokens",
        alert_thresholds=[100, 50, 80, 50],
        generation=3,
    )
    assert limit.metric is Metric.TOTAL_TOKENS
    assert limit.window == WindowSpec(WindowKind.SLIDING, 3600)
    assert limit.selector.provider == "openai"
    assert limit.partition is Partition.PER_SUBJECT
    assert limit.action is LimitAction.WARN
    assert limit.alert_thresholds == (50, 80, 100)
    assert limit.generation == 3


@pytest.mark.parametrize(
    ("changes", "field", "why"),
    [
        ({"id": ""}, "limit.id", "required"),
        ({"id": "has space"}, "limit.id", "1-64"),
        ({"id": "a/b"}, "limit.id", "1-64"),
        ({"id": "x" * 65}, "limit.id", "1-64"),
        ({"max": 0}, "limit.max", "greater than 0"),
        ({"max": -5}, "limit.max", "greater than 0"),
        ({"max": 2**63}, "limit.max", "greater than 0"),
        ({"max": True}, "limit.max", "greater than 0"),
        ({"metric": ""}, "limit.metric", "required"),
        ({"metric": "tokens"}, "limit.metric", "unknown value 'tokens'"),
        ({"window_kind": ""}, "limit.window.kind", "required"),
        ({"window_kind": "year"}, "limit.window.kind", "unknown value"),
        ({"action": "block"}, "limit.action", "unknown value"),
        ({"partition": "per_team"}, "limit.partition", "unknown value"),
        ({"window_kind": "fixed"}, "limit.window.duration", "1.."),
        ({"window_kind": "fixed", "window_seconds": MAX_FIXED_SECONDS + 1}, "limit.window.duration", "1.."),
        ({"window_kind": "sliding"}, "limit.window.duration", "1..86400"),
        ({"window_kind": "sliding", "window_seconds": 86_401}, "limit.window.duration", "1..86400"),
        ({"window_kind": "sliding", "window_seconds": -60}, "limit.window.duration", "1..86400"),
        ({"window_kind": "fixed", "window_seconds": 1, "window_nanos": 500_000_000}, "limit.window.duration", "whole"),
        ({"window_kind": "minute", "window_seconds": 60}, "limit.window.duration", "must not be set"),
        ({"window_kind": "month", "window_nanos": 1}, "limit.window.duration", "must not be set"),
        ({"selector": Selector(subject="u", subject_prefix="u")}, "limit.selector.subject_prefix", "mutually"),
        ({"selector": Selector(subject="s" * 257)}, "limit.selector.subject", "256"),
        ({"selector": Selector(provider="p" * 257)}, "limit.selector.provider", "256"),
        ({"selector": Selector(model="m" * 257)}, "limit.selector.model", "256"),
        ({"selector": Selector(operation="o" * 257)}, "limit.selector.operation", "256"),
        ({"selector": Selector(labels=(("", "v"),))}, "limit.selector.labels", "empty"),
        ({"selector": Selector(labels=(("k", "v" * 257),))}, "limit.selector.labels[k]", "256"),
        ({"selector": Selector(labels=(("k", "1"), ("k", "2")))}, "limit.selector.labels", "duplicate"),
        ({"selector": Selector(labels=tuple((f"k{i}", "v") for i in range(17)))}, "limit.selector.labels", "16"),
        ({"alert_thresholds": [80, 0]}, "limit.alert_thresholds_percent[1]", "1..1000"),
        ({"alert_thresholds": [1001]}, "limit.alert_thresholds_percent[0]", "1..1000"),
        ({"description": "d" * 1025}, "limit.description", "1024"),
    ],
)
def test_validate_limit_rejects(changes: dict[str, Any], field: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_limit(**{**VALID, **changes})
    assert len(exc.value.violations) == 1, exc.value.violations
    got_field, got_why = exc.value.violations[0]
    assert got_field == field
    assert why in got_why


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "x" * 64},
        {"id": "A-z.0_9:"},
        {"max": 2**63 - 1},
        {"window_kind": "fixed", "window_seconds": 1},
        {"window_kind": "sliding", "window_seconds": 86_400},
        {"window_kind": "week", "window_seconds": 0, "window_nanos": 0},
        {"alert_thresholds": [1, 1000]},
        {"metric": "Failed_Calls", "action": "SHADOW", "partition": "PER_API_KEY"},
        {"selector": Selector(subject="s" * 256, labels=(("k" * 256, "v" * 256),))},
    ],
)
def test_validate_limit_accepts_edges(changes: dict[str, Any]) -> None:
    validate_limit(**{**VALID, **changes})


def test_validate_limit_lists_every_violation_at_once() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_limit(
            id="",
            metric="tokens",
            window_kind="fixed",
            max=0,
            selector=Selector(subject="u:1", subject_prefix="u:", labels=(("", "x"),)),
            action="block",
            alert_thresholds=[0, 80],
        )
    assert [field for field, _ in exc.value.violations] == [
        "limit.id",
        "limit.selector.subject_prefix",
        "limit.selector.labels",
        "limit.metric",
        "limit.window.duration",
        "limit.max",
        "limit.action",
        "limit.alert_thresholds_percent[0]",
    ]
    assert "limit.max: must be greater than 0" in str(exc.value)


# ------------------------------------------------------------------------------- Usage

USAGE = Usage(requests=1, input_tokens=1_200, output_tokens=300, units=4, cost_nanos=6_000_000, failed=1)


@pytest.mark.parametrize(
    ("metric", "amount"),
    [
        (Metric.REQUESTS, 1),
        (Metric.INPUT_TOKENS, 1_200),
        (Metric.OUTPUT_TOKENS, 300),
        (Metric.TOTAL_TOKENS, 1_500),
        (Metric.COST_NANOS, 6_000_000),
        (Metric.UNITS, 4),
        (Metric.FAILED_CALLS, 1),
    ],
)
def test_usage_amount_for(metric: Metric, amount: int) -> None:
    assert USAGE.amount_for(metric) == amount


def test_usage_defaults_to_zero() -> None:
    assert all(Usage().amount_for(m) == 0 for m in Metric)


@pytest.mark.parametrize(
    "bad",
    [{"requests": -1}, {"input_tokens": 2**63}, {"units": True}, {"cost_nanos": 1.5}, {"failed": 2}],
)
def test_usage_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Usage(**bad)


# ------------------------------------------------------------------------------- partitions, matching


def limit(id: str, selector: Selector = Selector(), partition: Partition = Partition.SHARED) -> Limit:  # noqa: B008
    return Limit(
        id=id,
        selector=selector,
        metric=Metric.REQUESTS,
        window=WindowSpec(WindowKind.MINUTE),
        max=10,
        partition=partition,
        action=LimitAction.DENY,
    )


@pytest.mark.parametrize(
    ("partition", "key"),
    [(Partition.SHARED, ""), (Partition.PER_SUBJECT, "team:search/user:42"), (Partition.PER_API_KEY, "key_7")],
)
def test_partition_key(partition: Partition, key: str) -> None:
    assert partition_key(limit("l", partition=partition), "team:search/user:42", "key_7") == key


def test_matching_returns_matches_sorted_by_id() -> None:
    limits = [
        limit("team-tokens", Selector(subject_prefix="team:search/")),
        limit("b"),
        limit("other-team", Selector(subject_prefix="team:ads/")),
        limit("a.openai", Selector(provider="OpenAI")),
        limit("B-upper"),  # code point order: upper case sorts before lower case
        limit("anthropic", Selector(provider="anthropic")),
        limit("feature", Selector(labels=(("feature", "search"),))),
    ]
    got = matching(limits, **CALL)
    assert [lim.id for lim in got] == ["B-upper", "a.openai", "b", "feature", "team-tokens"]
    assert [lim.id for lim in matching(reversed(limits), **CALL)] == [lim.id for lim in got]


def test_matching_nothing() -> None:
    assert matching([], **CALL) == []
    assert matching([limit("x", Selector(model="o3"))], **CALL) == []


def test_an_estimate_is_stored_with_every_field():
    # Estimate.to_json is written out by hand for speed; a field added to Estimate must be added there too.
    import dataclasses

    from meterd.domain.quota import Estimate

    estimate = Estimate(input_tokens=1, max_output_tokens=2, cached_read_tokens=3, requests=4, units=5, cost_nanos=6)
    assert estimate.to_json() == dataclasses.asdict(estimate)
