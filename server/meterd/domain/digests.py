"""Scheduled report digests (AlertKind.REPORT_DIGEST): which period is due, and its identity.

A digest covers one whole UTC day, ISO week (from Monday) or month — the periods of `meter report`
(console/ranges.report_range) — and is sent once the period has ended plus SETTLE, so calls in
flight at midnight are counted. Only the latest ended period is due: a server down for a week sends
one digest when it is back, not seven, and a new rule sends the latest ended period's at once (a
first digest to check the channel by). Its identity (dedup key) is the rule and the period's start,
so meter_raise_alert writes it once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.limits import Selector
from meterd.domain.windows import WindowKind, WindowSpec, window_start

PERIODS = {WindowKind.DAY: "day", WindowKind.WEEK: "week", WindowKind.MONTH: "month"}
SETTLE = dt.timedelta(minutes=2)
_TICK = dt.timedelta(microseconds=1)


def digest_problems(window: WindowSpec | None, scope: Selector, cooldown_s: float, v: list[tuple[str, str]]) -> None:
    """validate_rule's checks of a REPORT_DIGEST rule (appended to v)."""
    if window is None or window.kind not in PERIODS:
        v.append(("rule.window", "a digest's period: DAY, WEEK or MONTH"))
    if scope != Selector():
        v.append(("rule.scope", "a digest covers the whole tenant (as `meter report`); leave it unset"))
    if cooldown_s:
        v.append(("rule.cooldown", "not used by report_digest rules (one digest per period); leave it unset"))


def due_period(window: WindowSpec, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the latest period that ended at least SETTLE before `now`."""
    end = window_start(window, now - SETTLE)
    return window_start(window, end - _TICK), end


def dedup_key(rule_id: str, start: dt.datetime) -> str:
    return f"rd/{rule_id}/{start.astimezone(dt.UTC):%Y-%m-%dT%H:%M}"


@dataclasses.dataclass(frozen=True)
class Digest:
    """What a period's digest says: the text every channel sends and its total cost (nano-USD)."""

    text: str
    cost_nanos: int
