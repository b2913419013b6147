"""Alert channels' pure parts: dollars, masking, templates, threshold figures."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain import channels as ch
from meterd.domain.alerts import Alert, AlertKind, Severity


def alert(**fields) -> Alert:
    base = dict(
        id=7, tenant_id="acme", rule_id="(default)", kind=AlertKind.LIMIT_THRESHOLD, severity=Severity.WARNING,
        subject="team:a", provider="", model="", limit_id="daily-cost", metric="cost_nanos", observed=80.4,
        threshold=80, window_start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        window_end=dt.datetime(2026, 3, 2, tzinfo=dt.UTC), message="limit daily-cost reached 80% of its max",
        created_at=dt.datetime(2026, 3, 1, 15, tzinfo=dt.UTC),
    )  # fmt: skip
    return Alert(**(base | fields))


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (100_000_000, "$0.10"),
        (10_000_000, "$0.01"),
        (250_000, "$0.00025"),
        (0, "$0.00"),
        (1_234_567_000_000, "$1,234.57"),
    ],
)
def test_money_is_shown_in_dollars(nanos, text):
    assert ch.usd(nanos) == text


def test_threshold_alerts_show_percents_and_the_limit():
    r = ch.render(alert(), "", "")
    assert r.text == "[WARNING] limit daily-cost reached 80% of its max"
    assert dict(r.fields) == {
        "Subject": "team:a", "Limit": "daily-cost", "Observed": "80%", "Threshold": "80%",
        "Window": "2026-03-01 00:00 – 2026-03-02 00:00 UTC", "Rule": "(default)",
    }  # fmt: skip


def test_template_placeholders_are_checked_and_substituted_safely():
    v: list = []
    ch.validate_template("${severity} ${nope}", v)
    assert v and v[0][0] == "rule.message_template" and "nope" in v[0][1]
    v = []
    ch.validate_template("${message.__class__}", v)  # no attribute access: not even a placeholder
    assert v and "invalid placeholder" in v[0][1]
    v = []
    ch.validate_template("cost $$5 and $", v)
    assert v and "invalid placeholder" in v[0][1]
    v = []
    ch.validate_template("${subject} over ${threshold} $$ ${console_link}", v)
    assert v == []
    r = ch.render(
        alert(kind=AlertKind.CALL_COST, observed=2e8, threshold=1e8),
        "${subject} over ${threshold} $$${console_link}",
        "https://c.example",
    )
    assert r.text == "team:a over $0.10 $\nhttps://c.example"


def test_secret_urls_are_masked_to_scheme_and_host():
    assert ch.mask_url("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com/…"
    assert ch.mask_url("http://127.0.0.1:8080/x?token=1") == "http://127.0.0.1:8080/…"
    assert ch.Channel(ch.ChannelKind.PAGERDUTY, secret="rk").target == "https://events.pagerduty.com/…"
