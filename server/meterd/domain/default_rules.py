"""A tenant's starter alert rules (`meter alerts defaults`): 80% and 100% of every limit, error rate
over 10% in an hour, and daily cost over a threshold when one is given. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meterd.domain.alerts import AlertRule, validate_rule
from meterd.domain.limits import Selector

DEFAULT_IDS = ("default-limits", "default-error-rate", "default-daily-cost")


def default_rules(
    *,
    daily_cost_nanos: int = 0,
    error_rate: float = 0.10,
    min_calls: int = 20,
    channels: Iterable[dict[str, Any]] = (),
    message_template: str = "",
) -> list[AlertRule]:
    """The rules, validated (InvalidArgument as for any rule). A LIMIT_THRESHOLD rule replaces the
    built-in "(default)" rule (same levels) and can carry channels, which the built-in one cannot;
    SHADOW limits still never alert."""
    channels = list(channels)
    # Keywords every rule shares; validate_rule checks each (mixed types, hence Any).
    common: dict[str, Any] = dict(
        scope=Selector(), channels=channels, message_template=message_template, cooldown_s=3600
    )
    rules = [
        validate_rule(id="default-limits", kind="limit_threshold", severity="warning", thresholds=(80, 100),
                      **{**common, "cooldown_s": 0}),
        validate_rule(id="default-error-rate", kind="error_rate", severity="warning", error_rate=error_rate,
                      min_calls=min_calls, window_kind="hour", **common),
    ]  # fmt: skip
    if daily_cost_nanos:
        rules.append(
            validate_rule(id="default-daily-cost", kind="window_cost", severity="critical",
                          amount_nanos=daily_cost_nanos, window_kind="day", **common)
        )  # fmt: skip
    return rules
