"""Unit tests for meterd.domain.usage and usage_results; expected figures are worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from meterd.domain import histogram
from meterd.domain.errors import InvalidArgument
from meterd.domain.projection import basis_days, project, projection_window
from meterd.domain.usage import (
    Bucket,
    Dimension,
    Order,
    Source,
    Span,
    hour_ceil,
    hour_floor,
    plan_spans,
    usage_filter,
    validate_usage_query,
)
from meterd.domain.usage_results import Aggregate, combine

NOW = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)  # a Tuesday


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def query(**overrides):
    values = dict(
        start=None,
        end=None,
        now=NOW,
        filter=usage_filter(),
        group_by=[],
        label_key="",
        bucket=None,
        order=Order.KEYS,
        descending=False,
        limit=0,
        projection=False,
    )
    values.update(overrides)
    return validate_usage_query(**values)


def violations(call) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as err:
        call()
    return dict(err.value.violations)


def test_defaults_are_the_last_30_days_and_1000_rows():
    q = query()
    assert (q.start, q.end) == (NOW - dt.timedelta(days=30), NOW)
    assert q.limit == 1000
    assert query(limit=5).limit == 5 and query(limit=5000).limit == 1000
    assert query(end=at(3, 1)).start == at(1, 30)


def test_invalid_queries_list_every_problem():
    found = violations(
        lambda: query(
            start=at(3, 2), end=at(3, 1), group_by=[Dimension.LABEL, Dimension.TIME], limit=-1, violations=[("x", "y")]
        )
    )
    assert set(found) == {"x", "start", "label_key", "time_bucket", "limit"}
    assert "start" in violations(lambda: query(start=at(3, 1), end=at(3, 1)))


def test_repeated_dimensions_group_once_and_unused_options_are_dropped():
    q = query(group_by=[Dimension.SUBJECT, Dimension.MODEL, Dimension.SUBJECT], label_key="feature", bucket=Bucket.DAY)
    assert q.group_by == (Dimension.SUBJECT, Dimension.MODEL)
    assert (q.label_key, q.bucket) == ("", None)


def test_labels_and_outcomes_need_raw_calls_everything_else_reads_rollups():
    assert not query().raw
    assert not query(filter=usage_filter(subject="s", subject_prefix="t", provider="p", model="m", operation="o")).raw
    assert not query(group_by=[Dimension.SUBJECT, Dimension.TIME], bucket=Bucket.WEEK).raw
    assert query(filter=usage_filter(labels={"feature": "search"})).raw
    assert query(filter=usage_filter(success=False)).raw
    assert query(filter=usage_filter(success=True)).raw
    assert query(group_by=[Dimension.LABEL], label_key="feature").raw


def test_provider_filter_is_lower_cased_like_recorded_calls():
    assert usage_filter(provider=" OpenAI ").provider == "openai"


def test_rollups_answer_whole_hours_raw_calls_the_exact_range():
    start, end = at(3, 1, 10, 20), at(3, 2, 7, 5)
    assert query(start=start, end=end).answered_range() == (at(3, 1, 10), at(3, 2, 8))
    assert query(start=at(3, 1, 10), end=at(3, 2, 8)).answered_range() == (at(3, 1, 10), at(3, 2, 8))
    raw = query(start=start, end=end, filter=usage_filter(success=True))
    assert raw.answered_range() == (start, end)
    assert hour_floor(at(3, 1, 23, 59)) == at(3, 1, 23) and hour_ceil(at(3, 1, 23, 1)) == at(3, 2)


def spans_of(q) -> list[tuple[Source, dt.datetime, dt.datetime]]:
    return [(s.source, s.start, s.end) for s in plan_spans(q, *q.answered_range())]


def test_subject_free_queries_read_daily_rows_for_whole_days_and_hourly_rows_at_the_edges():
    # 1 Mar 10:20 .. 4 Mar 07:05 answers 10:00 .. 08:00: the rest of 1 Mar hourly, 2-3 Mar daily, 4 Mar hourly.
    by_model_day = query(start=at(3, 1, 10, 20), end=at(3, 4, 7, 5), group_by=[Dimension.MODEL, Dimension.TIME],
                         bucket=Bucket.DAY)  # fmt: skip
    assert spans_of(by_model_day) == [
        (Source.MODEL_HOURLY, at(3, 1, 10), at(3, 2)),
        (Source.MODEL_DAILY, at(3, 2), at(3, 4)),
        (Source.MODEL_HOURLY, at(3, 4), at(3, 4, 8)),
    ]
    # Whole days only: daily rows alone.
    assert spans_of(query(start=at(3, 1), end=at(3, 4), filter=usage_filter(model="m"))) == [
        (Source.MODEL_DAILY, at(3, 1), at(3, 4))
    ]
    # Less than a whole day, or grouped by hour: hourly rows.
    assert spans_of(query(start=at(3, 1, 1), end=at(3, 2, 5))) == [(Source.MODEL_HOURLY, at(3, 1, 1), at(3, 2, 5))]
    by_hour = query(start=at(3, 1), end=at(3, 4), group_by=[Dimension.TIME], bucket=Bucket.HOUR)
    assert spans_of(by_hour) == [(Source.MODEL_HOURLY, at(3, 1), at(3, 4))]


def test_subjects_read_the_subject_rollup_labels_and_outcomes_raw_calls():
    start, end = at(3, 1, 10, 20), at(3, 4, 7, 5)
    for q in (
        query(start=start, end=end, filter=usage_filter(subject="user:1")),
        query(start=start, end=end, filter=usage_filter(subject_prefix="team:")),
        query(start=start, end=end, group_by=[Dimension.SUBJECT]),
    ):
        # Whole days from the per-subject daily grain (migration 0012), the edges from the hours.
        assert spans_of(q) == [
            (Source.SUBJECT_HOURLY, at(3, 1, 10), at(3, 2)),
            (Source.SUBJECT_DAILY, at(3, 2), at(3, 4)),
            (Source.SUBJECT_HOURLY, at(3, 4), at(3, 4, 8)),
        ]
    raw = query(start=start, end=end, filter=usage_filter(labels={"f": "x"}))
    assert plan_spans(raw, *raw.answered_range()) == (Span(Source.CALLS, start, end),)


def test_declared_labels_and_error_codes_read_the_label_rollups():
    start, end = at(3, 1, 10, 20), at(3, 4, 7, 5)
    label_rollups = [
        (Source.LABEL_HOURLY, at(3, 1, 10), at(3, 2)),
        (Source.LABEL_DAILY, at(3, 2), at(3, 4)),
        (Source.LABEL_HOURLY, at(3, 4), at(3, 4, 8)),
    ]
    declared = frozenset({"bot"})
    for q in (
        query(start=start, end=end, group_by=[Dimension.LABEL, Dimension.MODEL], label_key="bot"),
        query(start=start, end=end, filter=usage_filter(labels={"bot": "a"}), group_by=[Dimension.PROVIDER]),
        query(
            start=start, end=end, filter=usage_filter(labels={"bot": "a"}), group_by=[Dimension.LABEL], label_key="bot"
        ),
        query(start=start, end=end, group_by=[Dimension.ERROR_CODE, Dimension.PROVIDER]),
        query(start=start, end=end, filter=usage_filter(error_code="429")),
    ):
        q = dataclasses.replace(q, declared=declared)
        assert spans_of(q) == label_rollups, q
        assert q.dimension_key == ("" if q.filter.error_code or Dimension.ERROR_CODE in q.group_by else "bot")
    # Undeclared, two keys, a label with the error code, subjects or outcomes: raw calls.
    for q in (
        query(start=start, end=end, group_by=[Dimension.LABEL], label_key="feature"),
        query(start=start, end=end, filter=usage_filter(labels={"bot": "a", "feature": "x"})),
        query(start=start, end=end, filter=usage_filter(error_code="429"), group_by=[Dimension.LABEL], label_key="bot"),
        query(start=start, end=end, filter=usage_filter(subject="u"), group_by=[Dimension.ERROR_CODE]),
        query(start=start, end=end, filter=usage_filter(success=False), group_by=[Dimension.ERROR_CODE]),
    ):
        q = dataclasses.replace(q, declared=declared)
        assert q.raw and plan_spans(q, *q.answered_range()) == (Span(Source.CALLS, start, end),), q


def test_combining_disjoint_groups_adds_sums_and_histograms():
    fast, slow = histogram.empty(), histogram.empty()
    fast[histogram.bucket(1_000)] = 3
    slow[histogram.bucket(1_000_000)] = 1
    a = Aggregate(calls=3, errors=1, cost_nanos=10, latency_count=3, latency_sum_us=3_000, latency_buckets=tuple(fast))
    b = Aggregate(calls=2, cost_nanos=5, latency_count=1, latency_sum_us=1_000_000, latency_buckets=tuple(slow))
    none = Aggregate(calls=1, cost_nanos=1)  # no latencies: an empty histogram
    total = combine([a, b, none])
    assert (total.calls, total.errors, total.cost_nanos, total.latency_count) == (6, 1, 16, 4)
    assert total.latency_buckets[histogram.bucket(1_000)] == 3 and sum(total.latency_buckets) == 4
    # p50 of 1 ms, 1 ms, 1 ms, 1 s is the 2nd smallest: 1 ms (within the bucket error).
    assert abs(total.latency_percentile_us(0.5) - 1_000) <= 1_000 * histogram.MAX_RELATIVE_ERROR
    assert combine([none]).latency_buckets == () and combine([]) == Aggregate()


def test_derived_figures():
    hist = histogram.empty()
    for us in (1000, 2000, 4000, 8000):
        hist[histogram.bucket(us)] += 1
    a = Aggregate(
        calls=8,
        errors=2,
        input_tokens=600,
        output_tokens=300,
        cached_read_tokens=300,
        cache_write_tokens=100,
        cost_nanos=2600,
        latency_count=4,
        latency_sum_us=15_000,
        latency_buckets=tuple(hist),
    )
    assert a.successes == 6 and a.error_rate == 0.25
    assert a.total_tokens == 1300
    assert a.cost_nanos_per_1k_tokens == 2000.0  # 2,600 nanos per 1,300 tokens
    assert a.cache_hit_rate == 0.3  # 300 / (600 + 300 + 100)
    assert a.latency_avg_us == 3750
    assert a.output_tokens_per_second == 20_000.0  # 300 tokens in 15 ms of summed latency
    # 2,000 µs is the 2nd of 4: bucket 43 (2^10.75 <= 2000 < 2^11), reported as 2^(43.5/4) ≈ 1,878 µs.
    assert a.latency_percentile_us(0.5) == round(2 ** (43.5 / 4)) == 1878
    # 8,000 µs is the 4th: 4 * log2(8000) = 51.86, bucket 51.
    assert a.latency_percentile_us(0.99) == round(2 ** (51.5 / 4))
    empty = Aggregate()
    assert (empty.error_rate, empty.cost_nanos_per_1k_tokens, empty.cache_hit_rate) == (0.0, 0.0, 0.0)
    assert empty.latency_avg_us is None and empty.latency_percentile_us(0.5) is None
    assert empty.output_tokens_per_second == 0.0


def test_projection_window_is_the_month_of_the_end_and_the_seven_days_before_its_day():
    w = projection_window(at(3, 10, 12))
    assert (w.month_start, w.month_end) == (at(3, 1), at(4, 1))
    assert (w.basis_start, w.basis_end) == (at(3, 3), at(3, 10))
    # An end of exactly midnight on the 1st answers the month that just ended.
    w = projection_window(at(4, 1))
    assert (w.month_start, w.month_end, w.basis_end) == (at(3, 1), at(4, 1), at(4, 1))
    w = projection_window(at(12, 31, 23, 30))
    assert w.month_end == at(1, 1, year=2027)


def test_basis_days_count_full_days_with_history():
    w = projection_window(at(3, 10, 12))
    assert basis_days(w, None) == 0
    assert basis_days(w, w.basis_start) == 7  # usage before the basis period: all 7 days
    assert basis_days(w, at(3, 8, 15)) == 2  # 8 and 9 March
    assert basis_days(w, at(3, 9, 23, 59)) == 1
    assert basis_days(w, at(3, 10, 1)) == 0  # only today: no full day yet


def test_projection_arithmetic():
    w = projection_window(at(3, 10, 12))  # 21.5 days left until 1 April
    p = project(w, month_to_date=1000, basis_cost=700, days=7)
    assert (p.daily_run_rate_cost_nanos, p.projected_month_cost_nanos) == (100, 1000 + 2150)
    assert (p.basis_days, p.month_end) == (7, at(4, 1))
    # 1,000 over 3 days = 333.33/day; 21.5 days of it = 7,166.67, rounded down.
    p = project(w, month_to_date=50, basis_cost=1000, days=3)
    assert (p.daily_run_rate_cost_nanos, p.projected_month_cost_nanos) == (333, 50 + 7166)
    p = project(w, month_to_date=50, basis_cost=0, days=0)
    assert (p.daily_run_rate_cost_nanos, p.projected_month_cost_nanos, p.basis_days) == (0, 50, 0)
    # Exact in integers however large: 10^15 nanos a day for 21.5 days.
    p = project(w, month_to_date=0, basis_cost=7 * 10**15, days=7)
    assert p.projected_month_cost_nanos == 215 * 10**14
