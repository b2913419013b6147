"""The alert evaluator's judgements: a rule and the figures of its window in, the alerts it raises
out. Pure (no I/O): service/alerts.py reads the figures from the store and feeds them here."""

from __future__ import annotations

import datetime as dt

from meterd.domain import histogram
from meterd.domain.alerts import PROJECTION_BASIS, AlertKind, AlertRule, Candidate, GroupFigures
from meterd.domain.forecast import projected_period_cost, us


def scope_subject(rule: AlertRule) -> str:
    return rule.scope.subject or rule.scope.subject_prefix


def _key(rule: AlertRule, start: dt.datetime, *parts: str) -> str:
    return "/".join((rule.kind.value[:2], rule.id, str(int(start.timestamp())), *parts))


def _usd(nanos: float) -> str:
    return f"${nanos / 1e9:,.2f}"


def judge_rollups(rule: AlertRule, start: dt.datetime, end: dt.datetime, groups: list[GroupFigures]) -> list[Candidate]:
    """WINDOW_COST (whole scope), ERROR_RATE / LATENCY_P95 / UNPRICED_MODEL (per provider and model)."""
    subject = scope_subject(rule)
    out: list[Candidate] = []

    def add(provider, model, metric, observed, threshold, message, *key) -> None:
        out.append(
            Candidate(rule, _key(rule, start, *key), "/".join((subject, *key)), subject, provider, model, metric,
                      float(observed), float(threshold), start, end, message)
        )  # fmt: skip

    span = _window_span(rule, start)
    if rule.kind is AlertKind.WINDOW_COST:
        cost = sum(g.cost_nanos for g in groups)
        if cost > rule.amount_nanos:
            add("", "", "cost_nanos", cost, rule.amount_nanos,
                f"cost {_usd(cost)} over {_usd(rule.amount_nanos)} in {span}{' for ' + subject if subject else ''}")  # fmt: skip
        return out
    for g in groups:
        if rule.kind is AlertKind.ERROR_RATE and g.calls >= max(1, rule.min_calls):
            rate = g.errors / g.calls
            if rate > rule.error_rate:
                add(g.provider, g.model, "error_rate", rate, rule.error_rate,
                    f"error rate {rate:.1%} ({g.errors} of {g.calls} calls) of {g.provider}/{g.model} over "
                    f"{rule.error_rate:.1%} in {span}", g.provider, g.model)  # fmt: skip
        elif rule.kind is AlertKind.LATENCY_P95 and sum(g.latency_buckets) >= max(1, rule.min_calls):
            p95 = histogram.percentile(g.latency_buckets, 0.95) or 0
            if p95 > rule.latency_us:
                add(g.provider, g.model, "latency_p95_seconds", p95 / 1e6, rule.latency_us / 1e6,
                    f"p95 latency {p95 / 1e6:.3f}s of {g.provider}/{g.model} over {rule.latency_us / 1e6:.3f}s "
                    f"in {span}", g.provider, g.model)  # fmt: skip
        elif rule.kind is AlertKind.UNPRICED_MODEL and g.unpriced_calls > 0:
            add(g.provider, g.model, "unpriced_calls", g.unpriced_calls, 0,
                f"{g.unpriced_calls} call(s) of {g.provider}/{g.model} recorded without a price (cost 0) in {span}; "
                "add a price and reprice", g.provider, g.model)  # fmt: skip
    return out


def _window_span(rule: AlertRule, start: dt.datetime) -> str:
    # Windowed kinds always carry a window (rule validation); without one the text still reads.
    kind = f"{rule.window.kind.value} " if rule.window is not None else ""
    return f"the {kind}window from {start:%Y-%m-%d %H:%M} UTC"


def judge_count(rule: AlertRule, start: dt.datetime, end: dt.datetime, count: int) -> list[Candidate]:
    """DENIALS and RESERVATION_EXPIRED: a count in the window over the rule's count."""
    if count <= rule.count:
        return []
    subject = scope_subject(rule)
    what = "quota denials" if rule.kind is AlertKind.DENIALS else "reservations expired unsettled"
    span = _window_span(rule, start)
    return [
        Candidate(rule, _key(rule, start), subject, subject, "", "", rule.kind.value, float(count), float(rule.count),
                  start, end, f"{count} {what} in {span}, over {rule.count}{' for ' + subject if subject else ''}")
    ]  # fmt: skip


def judge_projection(
    rule: AlertRule,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    so_far: int,
    basis_cost: int,
    basis_start: dt.datetime,
) -> list[Candidate]:
    """PROJECTED_OVER_BUDGET: the period's cost so far plus the rate of [basis_start, now) (about
    PROJECTION_BASIS, from a whole hour) over the time left, over the budget (amount_nanos). One
    alert per period (the dedup key)."""
    basis_us, left_us = us(now - basis_start), us(end - now)
    projected = projected_period_cost(so_far, basis_cost, basis_us, left_us)
    if projected <= rule.amount_nanos:
        return []
    subject = scope_subject(rule)
    per_day = basis_cost * 86_400_000_000 // max(1, basis_us)
    period = rule.window.kind.value if rule.window is not None else ""
    message = (
        f"projected cost {_usd(projected)} by {end:%Y-%m-%d %H:%M} UTC over the budget {_usd(rule.amount_nanos)}"
        f"{' for ' + subject if subject else ''}: {_usd(so_far)} so far in the {period} window "
        f"from {start:%Y-%m-%d %H:%M} UTC, {_usd(per_day)}/day over the last {PROJECTION_BASIS.days} days"
    )
    return [
        Candidate(rule, _key(rule, start), subject, subject, "", "", "projected_cost_nanos", float(projected),
                  float(rule.amount_nanos), start, end, message)
    ]  # fmt: skip
