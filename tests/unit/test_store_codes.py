"""The strings the store writes for the domain's enums: one per member, never two members alike,
and pinned (the tables, migrations' PL/pgSQL and rows of older versions hold them)."""

from __future__ import annotations

import pytest

from meterd.store import codes


@pytest.mark.parametrize("mapping", codes.ALL, ids=lambda m: type(next(iter(m))).__name__)
def test_every_member_has_its_own_stored_string(mapping):
    enum = type(next(iter(mapping)))
    assert set(mapping) == set(enum)
    assert len(set(mapping.values())) == len(mapping)


def test_the_stored_strings_are_the_ones_migrations_and_old_rows_use():
    assert sorted(codes.METRIC.values()) == ["cost_nanos", "failed_calls", "input_tokens", "output_tokens",
                                             "requests", "total_tokens", "units"]  # fmt: skip
    assert sorted(codes.WINDOW_KIND.values()) == ["day", "fixed", "hour", "minute", "month", "sliding", "week"]
    assert sorted(codes.PARTITION.values()) == ["per_api_key", "per_subject", "shared"]
    assert sorted(codes.ACTION.values()) == ["deny", "shadow", "warn"]
    assert sorted(codes.RESERVATION_STATE.values()) == ["active", "expired", "released", "settled"]
    assert sorted(codes.SEVERITY.values()) == ["critical", "info", "warning"]
    assert sorted(codes.ALERT_KIND.values()) == [
        "call_cost", "denials", "error_rate", "latency_p95", "limit_threshold", "projected_over_budget",
        "report_digest", "reservation_expired", "unpriced_model", "window_cost",
    ]  # fmt: skip
    assert codes.ALERT_KIND_OF["limit_threshold"].name == "LIMIT_THRESHOLD"
