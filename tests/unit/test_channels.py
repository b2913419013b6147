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


@pytest.mark.parametrize("command", [["alerts", "defaults"], ["alerts", "rules", "set"]])
def test_cli_help_of_the_channel_commands(command, capsys):
    from meterd.cli import build_parser

    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*command, "--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and "--channel" in out and "--template" in out
    if command[1] == "defaults":
        assert "80%/100% of every limit" in out and "--daily-cost-usd" in out


def test_default_rules_are_valid_rules_and_carry_the_channels():
    from meterd.domain.default_rules import default_rules

    rules = default_rules(daily_cost_nanos=50_000_000_000, channels=[{"kind": "slack", "url": "https://h.example/x"}])
    assert [(r.id, r.kind.value) for r in rules] == [
        ("default-limits", "limit_threshold"), ("default-error-rate", "error_rate"), ("default-daily-cost", "window_cost"),
    ]  # fmt: skip
    assert rules[0].thresholds == (80, 100) and rules[1].error_rate == 0.10 and rules[2].amount_nanos == 50_000_000_000
    assert all(r.channels[0].kind is ch.ChannelKind.SLACK for r in rules)
    assert [r.id for r in default_rules()] == ["default-limits", "default-error-rate"]


def test_channels_from_json_with_wrong_types_get_violations_not_crashes():
    v: list = []
    out = ch.validate_channels(
        [{"kind": "email", "email_to": "ops@x.com", "smtp_port": "25"}, {"kind": "slack", "hook": "x"}, "slack"], v
    )
    assert out == () and set(dict(v)) == {
        "rule.channels[0].email_to", "rule.channels[0].smtp_port", "rule.channels[1].hook", "rule.channels[2]",
    }  # fmt: skip
