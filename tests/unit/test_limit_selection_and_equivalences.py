"""GetUsage's limit selection (domain/limit_selection.py) and the equivalence list's rules
(domain/equivalences.py), case by case."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain.equivalences import ModelEquivalence, equivalents_of, validate_equivalence
from meterd.domain.errors import InvalidArgument
from meterd.domain.limit_selection import reported, reported_partition
from meterd.domain.limits import Limit, LimitAction, Metric, Partition, Selector
from meterd.domain.usage import UsageFilter
from meterd.domain.windows import WindowKind, WindowSpec


def lim(partition: Partition = Partition.SHARED, id: str = "l", **selector) -> Limit:
    return Limit(id, Selector(**selector), Metric.REQUESTS, WindowSpec(WindowKind.DAY), 10, partition, LimitAction.DENY)


@pytest.mark.parametrize(
    "selector, filter, selected",
    [
        ({}, {}, True),
        ({"provider": "OpenAI"}, {"provider": "openai"}, True),  # case-insensitive, like matching calls
        ({"provider": "openai"}, {"provider": "anthropic"}, False),
        ({"provider": "openai"}, {}, True),  # the filter's calls include openai's
        ({}, {"model": "gpt-4.1"}, True),  # a limit on every model counts gpt-4.1's calls too
        ({"model": "GPT-4.1"}, {"model": "gpt-4.1"}, True),
        ({"operation": "chat"}, {"operation": "embed"}, False),
        ({"subject": "user:1"}, {"subject": "user:2"}, False),
        ({"subject": "team:a/user:1"}, {"subject_prefix": "team:a/"}, True),
        ({"subject": "team:b/user:1"}, {"subject_prefix": "team:a/"}, False),
        ({"subject_prefix": "team:a/"}, {"subject": "team:a/user:1"}, True),
        ({"subject_prefix": "team:a/"}, {"subject": "team:b/user:1"}, False),
        ({"subject_prefix": "team:"}, {"subject_prefix": "team:a/"}, True),  # overlapping prefixes
        ({"subject_prefix": "team:a/"}, {"subject_prefix": "team:b/"}, False),
        ({"labels": (("bot", "x"),)}, {"labels": {"bot": "x", "feature": "f"}}, True),
        ({"labels": (("bot", "x"),)}, {"labels": {"bot": "y"}}, False),
        ({"labels": (("bot", "x"),)}, {}, True),
    ],
)
def test_a_shared_limit_is_selected_unless_its_selector_contradicts_the_filter(selector, filter, selected):
    assert (reported_partition(lim(**selector), UsageFilter(**filter)) == "") is selected


def test_partitions_need_one_counter_for_the_filter():
    per_subject, per_key = lim(Partition.PER_SUBJECT), lim(Partition.PER_API_KEY)
    assert reported_partition(per_subject, UsageFilter(subject="user:1")) == "user:1"
    assert reported_partition(per_subject, UsageFilter(subject_prefix="user:")) is None
    assert reported_partition(per_subject, UsageFilter()) is None
    assert reported_partition(per_key, UsageFilter(subject="user:1")) is None
    limits = [lim(id="b"), lim(id="a", provider="x"), lim(id="c", provider="y")]
    assert [(x.id, p) for x, p in reported(limits, UsageFilter(provider="x"))] == [("a", ""), ("b", "")]


def test_equivalence_members_are_normalised_and_distinct():
    name, members = validate_equivalence(
        "small", ["OpenAI/gpt-4.1-mini", " anthropic / claude-haiku ", "openai/GPT-4.1-MINI"]
    )
    assert (name, members) == ("small", (("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku")))
    with pytest.raises(InvalidArgument) as err:
        validate_equivalence("bad name", ["x", "a/b"])
    assert [f for f, _ in err.value.violations] == ["name", "models[0]"]


def test_equivalents_are_the_other_members_of_every_group_holding_the_model():
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    groups = [
        ModelEquivalence("z", (("openai", "big"), ("acme", "b2"), ("openai", "mid")), at, at),
        ModelEquivalence("a", (("openai", "BIG"), ("openai", "mid"), ("beta", "b")), at, at),
        ModelEquivalence("other", (("x", "1"), ("x", "2")), at, at),
    ]
    names, others = equivalents_of(groups, "OpenAI", "big")
    assert names == ["a", "z"]  # by name; each member once, in group then list order
    assert others == [("openai", "mid"), ("beta", "b"), ("acme", "b2")]
    assert equivalents_of(groups, "openai", "tiny") == ([], [])
