"""Alert rules' validation, stream filters and the evaluator's judgements (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain.alert_judges import judge_count, judge_rollups
from meterd.domain.alerts import (
    Alert,
    AlertFilter,
    AlertKind,
    AlertRule,
    GroupFigures,
    Severity,
    validate_rule,
)
from meterd.domain.errors import InvalidArgument
from meterd.domain.histogram import BUCKETS, bucket
from meterd.domain.limits import Selector
from meterd.store.alerts import rule_from_row, rule_params

T0 = dt.datetime(2026, 3, 10, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=1)


def test_rule_round_trips_through_its_stored_form():
    rule = validate_rule(id="p95", kind="latency_p95", severity="critical", scope=Selector(model="gpt-4.1"),
                         window_kind="fixed", window_seconds=7200, latency_us=1_500_000, min_calls=10,
                         cooldown_s=600)  # fmt: skip
    row = {"id": rule.id, "kind": rule.kind.value, "severity": rule.severity.value, "scope": rule.scope.to_json(),
           "params": rule_params(rule), "cooldown_s": rule.cooldown_s, "webhook_url": "", "webhook_secret": "",
           "disabled": False}  # fmt: skip
    assert rule_from_row(row) == rule


def test_rollup_rules_need_whole_hours_and_no_labels():
    with pytest.raises(InvalidArgument) as err:
        validate_rule(id="e", kind="error_rate", severity="warning", scope=Selector(labels=(("a", "b"),)),
                      window_kind="fixed", window_seconds=1800, error_rate=0.1)  # fmt: skip
    assert {f for f, _ in err.value.violations} == {"rule.window", "rule.scope.labels"}
    with pytest.raises(InvalidArgument) as err:
        validate_rule(id="d", kind="denials", severity="info", scope=Selector(labels=(("a", "b"),)), window_kind="hour")
    assert {f for f, _ in err.value.violations} == {"rule.scope.labels"}
    # Denials come from per-minute counts: any window is fine.
    assert validate_rule(id="d", kind="denials", severity="info", scope=Selector(), window_kind="minute").count == 0


def test_filter_by_tenant_severity_kind_and_prefix():
    alert = Alert(1, "t", "r", AlertKind.CALL_COST, Severity.WARNING, "team:a/u", "", "", "", "", 0, 0, None, None,
                  "m", T0)  # fmt: skip
    assert AlertFilter("t").matches(alert)
    assert not AlertFilter("other").matches(alert)
    assert AlertFilter("t", Severity.WARNING).matches(alert) and not AlertFilter("t", Severity.CRITICAL).matches(alert)
    assert not AlertFilter("t", kinds=frozenset({AlertKind.DENIALS})).matches(alert)
    assert AlertFilter("t", subject_prefix="team:a/").matches(alert)
    assert not AlertFilter("t", subject_prefix="team:b/").matches(alert)


def _rule(kind: str, **fields) -> AlertRule:
    return validate_rule(id="r", kind=kind, severity="warning", scope=Selector(), window_kind="day", **fields)


def _group(model="m", calls=10, errors=0, cost=0, unpriced=0, latencies=()):
    hist = [0] * BUCKETS
    for us in latencies:
        hist[bucket(us)] += 1
    return GroupFigures("p", model, calls, errors, cost, unpriced, hist)


def test_window_cost_sums_the_scope_and_is_strictly_over():
    rule = _rule("window_cost", amount_nanos=100)
    assert judge_rollups(rule, T0, T1, [_group(cost=60), _group("n", cost=40)]) == []
    [c] = judge_rollups(rule, T0, T1, [_group(cost=60), _group("n", cost=41)])
    assert (c.observed, c.threshold, c.window_start, c.window_end) == (101, 100, T0, T1)
    assert c.dedup_key == f"wi/r/{int(T0.timestamp())}"


def test_error_rate_needs_min_calls_and_groups_by_model():
    rule = _rule("error_rate", error_rate=0.2, min_calls=5)
    out = judge_rollups(rule, T0, T1, [_group("a", calls=4, errors=4), _group("b", calls=5, errors=2),
                                       _group("c", calls=10, errors=2)])  # fmt: skip
    assert [(c.model, c.observed) for c in out] == [("b", 0.4)]  # a: too few calls; c: 20% is not over 20%


def test_latency_p95_from_histograms():
    rule = _rule("latency_p95", latency_us=1_000_000, min_calls=20)
    fast = [100_000] * 19 + [5_000_000]  # p95 is the 19th value: fast
    slow = [100_000] * 18 + [5_000_000] * 2
    assert judge_rollups(rule, T0, T1, [_group(latencies=fast)]) == []
    [c] = judge_rollups(rule, T0, T1, [_group(latencies=slow)])
    assert c.metric == "latency_p95_seconds" and 4.5 < c.observed < 5.5 and c.threshold == 1.0


def test_counts_alert_when_over():
    rule = _rule("denials", count=3)
    assert judge_count(rule, T0, T1, 3) == [] and judge_count(rule, T0, T1, 4)[0].observed == 4
