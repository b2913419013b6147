"""Which of a tenant's limits GetUsage reports (include_limits), and with which counter partition.

A limit is reported when it can count calls the usage filter selects, i.e. no field its selector
sets contradicts the filter (a selector field the filter leaves empty does not; provider and model
compare case-insensitively, as limits match calls), and when one counter answers for the filter:

* a shared limit: its one counter ("");
* a per-subject limit: only when the filter names one subject exactly (that subject's counter);
* a per-API-key limit: never (usage filters name no key).
"""

from __future__ import annotations

from meterd.domain.limits import Limit, Partition, Selector
from meterd.domain.usage import UsageFilter

MAX_REPORTED_LIMITS = 1000  # GetUsageResponse.limits; a tenant's limits are far fewer in practice


def _same(a: str, b: str, *, fold: bool = False) -> bool:
    """Unset on either side agrees; set on both must be equal."""
    if not a or not b:
        return True
    return a.casefold() == b.casefold() if fold else a == b


def _prefixes_overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def _subjects_agree(s: Selector, f: UsageFilter) -> bool:
    if s.subject:
        if f.subject:
            return s.subject == f.subject
        return s.subject.startswith(f.subject_prefix)
    if f.subject:
        return f.subject.startswith(s.subject_prefix)
    return _prefixes_overlap(s.subject_prefix, f.subject_prefix)


def overlaps(s: Selector, f: UsageFilter) -> bool:
    """Could a call match both the selector and the filter?"""
    return (
        _subjects_agree(s, f)
        and _same(s.provider, f.provider, fold=True)
        and _same(s.model, f.model, fold=True)
        and _same(s.operation, f.operation)
        and all(f.labels.get(key, value) == value for key, value in s.labels)
    )


def reported_partition(limit: Limit, f: UsageFilter) -> str | None:
    """The counter partition GetUsage reports for `limit` under filter `f`; None: not reported."""
    if not overlaps(limit.selector, f):
        return None
    match limit.partition:
        case Partition.SHARED:
            return ""
        case Partition.PER_SUBJECT:
            return f.subject or None
    return None


def reported(limits: list[Limit], f: UsageFilter) -> list[tuple[Limit, str]]:
    """(limit, partition) of every reported limit, by limit id."""
    out = [
        (limit, p) for limit in sorted(limits, key=lambda x: x.id) if (p := reported_partition(limit, f)) is not None
    ]
    return out[:MAX_REPORTED_LIMITS]
