"""The alert evaluator, the denial counter and the admin services over the in-memory ports."""

from __future__ import annotations

import datetime as dt

import pytest

from meter_testing.clock import FakeClock
from meter_testing.services import DIMS, T0, TENANT, limit
from meterd.domain.alert_records import DenialKey
from meterd.domain.alerts import GroupFigures, validate_rule
from meterd.domain.errors import InvalidArgument, NotFound
from meterd.domain.limits import Selector
from meterd.service.admin import AlertRuleAdmin, KeyAdmin, LimitAdmin
from meterd.service.alerts import DenialCounter, Evaluator
from meterd.service.fakes import FakeLimitStore
from meterd.service.fakes_control import FakeAlertStore, FakeKeyStore

HOUR = T0.replace(minute=0)


def error_rate_rule(**over):
    fields = dict(id="errors", kind="error_rate", severity="warning", scope=Selector(), window_kind="fixed",
                  window_seconds=3600, error_rate=0.1, min_calls=10)  # fmt: skip
    return validate_rule(**{**fields, **over})


@pytest.fixture
def alerts():
    clock = FakeClock(T0 + dt.timedelta(minutes=30))  # mid-window: only the current window is judged
    store = FakeAlertStore(clock)
    return clock, store, Evaluator(store, conninfo="", interval=1.0, clock=clock)


async def test_the_evaluator_raises_an_error_rate_alert_once_per_window_and_group(alerts):
    clock, store, evaluator = alerts
    rule = error_rate_rule()
    await store.set_rule(TENANT, rule)
    store.groups[(TENANT, rule.id)] = [
        GroupFigures("openai", "gpt-4.1", 100, 30, 0, 0, [0] * 128),  # 30%: over
        GroupFigures("openai", "gpt-5", 100, 5, 0, 0, [0] * 128),  # 5%: under
        GroupFigures("acme", "tiny", 5, 5, 0, 0, [0] * 128),  # too few calls to judge
    ]
    assert await evaluator.evaluate() == 1
    assert await evaluator.evaluate() == 0  # the same window and group: deduplicated
    (alert,) = store.alerts
    assert (alert.provider, alert.model, alert.observed, alert.threshold) == ("openai", "gpt-4.1", 0.3, 0.1)
    assert alert.window_start == HOUR and alert.window_end == HOUR + dt.timedelta(hours=1)


async def test_disabled_and_trigger_raised_rules_are_not_evaluated(alerts):
    _, store, evaluator = alerts
    await store.set_rule(TENANT, error_rate_rule(disabled=True))
    await store.set_rule(TENANT, validate_rule(id="cost", kind="call_cost", severity="info", scope=Selector(),
                                               amount_nanos=1))  # fmt: skip
    store.groups[(TENANT, "errors")] = [GroupFigures("openai", "gpt-4.1", 100, 90, 0, 0, [0] * 128)]
    assert await evaluator.evaluate() == 0


async def test_a_denial_count_rule_fires_over_its_count(alerts):
    _, store, evaluator = alerts
    rule = validate_rule(id="denied", kind="denials", severity="critical", scope=Selector(), window_kind="hour",
                         count=3)  # fmt: skip
    await store.set_rule(TENANT, rule)
    store.denial_counts[(TENANT, rule.id)] = 3
    assert await evaluator.evaluate() == 0
    store.denial_counts[(TENANT, rule.id)] = 4
    assert await evaluator.evaluate() == 1


async def test_denials_are_counted_per_minute_and_kept_when_a_flush_fails():
    store = FakeAlertStore()
    counter = DenialCounter(store, clock=lambda: T0)
    counter.denied(TENANT, DIMS, T0.replace(second=5))
    counter.denied(TENANT, DIMS, T0.replace(second=59))
    failing = store.add_denials

    async def down(rows):
        raise ConnectionError("database down")

    store.add_denials = down
    with pytest.raises(ConnectionError):
        await counter.flush()
    store.add_denials = failing
    await counter.flush()
    key = DenialKey(TENANT, T0.replace(second=0), "user:1", "openai", "gpt-4.1", "chat")
    assert store.denials_added == {key: 2}


async def test_limit_admin_writes_then_drops_the_cached_limits():
    dropped = []
    admin = LimitAdmin(FakeLimitStore(lambda: T0), invalidate=dropped.append)
    stored, created = await admin.set(TENANT, limit("rpm", "requests", 5))
    _, created_again = await admin.set(TENANT, limit("rpm", "requests", 6))
    changed, _ = await admin.set(TENANT, limit("rpm", "input_tokens", 6))
    assert created and not created_again and stored.limit.generation == 1 and changed.limit.generation == 2
    await admin.delete(TENANT, "rpm")
    assert dropped == [TENANT] * 4
    with pytest.raises(NotFound):
        await admin.delete(TENANT, "rpm")
    assert dropped == [TENANT] * 4  # nothing changed, nothing dropped


async def test_key_admin_validates_and_forgets_a_revoked_key():
    forgotten = []
    admin = KeyAdmin(FakeKeyStore(lambda: T0), forget=forgotten.append, clock=lambda: T0)
    with pytest.raises(InvalidArgument, match="unknown role"):
        await admin.create(TENANT, ["superuser"])
    with pytest.raises(InvalidArgument, match="future"):
        await admin.create(TENANT, ["read"], expires_at=T0 - dt.timedelta(seconds=1))
    key, secret = await admin.create(TENANT, ["read", "admin", "read"], "ops")
    assert key.roles == ["read", "admin"] and secret.startswith("mk_")
    await admin.revoke(TENANT, key.id)
    assert forgotten == [key.id] and await admin.list(TENANT) == []
    with pytest.raises(NotFound):
        await admin.revoke("other-tenant", key.id)


async def test_alert_rule_admin_round_trip():
    admin = AlertRuleAdmin(FakeAlertStore(lambda: T0))
    _, created = await admin.set(TENANT, error_rate_rule())
    assert created and [s.rule.id for s in await admin.list(TENANT)] == ["errors"]
    await admin.delete(TENANT, "errors")
    with pytest.raises(NotFound):
        await admin.delete(TENANT, "errors")
