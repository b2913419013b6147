"""Quota rules that need no I/O: what a call charges to each matched limit, and how a counter
reading turns into the status a caller sees (used, remaining, reset, retry-after)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from meterd.domain.calls import Dimensions
from meterd.domain.forecast import exhaustion_at
from meterd.domain.limits import Limit, LimitAction, Metric, Usage, partition_key
from meterd.domain.windows import WindowKind, retry_after, sliding_used, window_end

DEFAULT_RESERVATION_TTL = dt.timedelta(seconds=60)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a caller expects a call to use (CheckQuota / ExtendReservation)."""

    input_tokens: int = 0
    max_output_tokens: int = 0
    cached_read_tokens: int = 0
    requests: int = 1
    units: int = 0
    cost_nanos: int | None = None  # explicit; None: from the pricing catalog

    def violations(self, prefix: str) -> list[tuple[str, str]]:
        values = (self.input_tokens, self.max_output_tokens, self.cached_read_tokens, self.requests, self.units)
        if min(values) >= 0 and (self.cost_nanos or 0) >= 0:
            return []
        return [
            (f"{prefix}.{f.name}", "must not be negative")
            for f in dataclasses.fields(self)
            if (getattr(self, f.name) or 0) < 0
        ]

    def usage(self, cost_nanos: int) -> Usage:
        return Usage(
            requests=self.requests,
            input_tokens=self.input_tokens + self.cached_read_tokens,
            output_tokens=self.max_output_tokens,
            units=self.units,
            cost_nanos=cost_nanos,
        )

    def to_json(self) -> dict:
        # By hand: dataclasses.asdict deep-copies field by field, several times slower on the hot path.
        return {
            "input_tokens": self.input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "cached_read_tokens": self.cached_read_tokens,
            "requests": self.requests,
            "units": self.units,
            "cost_nanos": self.cost_nanos,
        }


@dataclasses.dataclass(frozen=True)
class Charge:
    """One matched limit's share of a call."""

    limit: Limit
    partition: str
    amount: int

    @property
    def enforced(self) -> bool:
        return self.limit.action is LimitAction.DENY


def charges(limits: list[Limit], subject: str, api_key_id: str, usage: Usage) -> list[Charge]:
    """One charge per matched limit, in the limits' (sorted) order."""
    return [
        Charge(limit, partition_key(limit, subject, api_key_id), usage.amount_for(limit.metric)) for limit in limits
    ]


def needs_cost(limits: list[Limit]) -> bool:
    return any(limit.metric is Metric.COST_NANOS for limit in limits)


@dataclasses.dataclass(frozen=True)
class CounterReading:
    """A counter's bucket as the database left it (previous bucket: sliding windows only)."""

    window_start: dt.datetime
    used: int
    reserved: int
    prev_used: int = 0
    prev_reserved: int = 0


@dataclasses.dataclass(frozen=True)
class LimitState:
    """What CheckQuota and RecordCall report for one matched limit."""

    limit: Limit
    partition: str
    used: int
    reserved: int
    remaining: int
    window_start: dt.datetime
    reset_at: dt.datetime
    percent_used: float
    denied: bool
    exceeded: bool
    # At the window's average rate so far (domain.forecast.exhaustion_at); None: not before reset_at.
    projected_exhausted_at: dt.datetime | None = None


def limit_state(charge: Charge, reading: CounterReading, at: dt.datetime, *, denied: bool) -> LimitState:
    spec = charge.limit.window
    used = reading.used
    if spec.kind is WindowKind.SLIDING:
        # The previous bucket's reservations still count against the window, like its usage.
        used = sliding_used(reading.used, reading.prev_used + reading.prev_reserved, spec, at)
    held = used + reading.reserved
    maximum = charge.limit.max
    reset_at = window_end(spec, at)
    return LimitState(
        limit=charge.limit,
        partition=charge.partition,
        used=used,
        reserved=reading.reserved,
        remaining=maximum - held,
        window_start=reading.window_start,
        reset_at=reset_at,
        percent_used=100.0 * held / maximum,
        denied=denied,
        exceeded=held > maximum,
        projected_exhausted_at=exhaustion_at(
            held, maximum, reading.window_start, at, reset_at, sliding=spec.kind is WindowKind.SLIDING
        ),
    )


def blocks(charge: Charge, state: LimitState) -> bool:
    """Would this (enforced) charge be denied against the state before it was applied?

    An amount of 0 (e.g. failed calls at check time) is denied once the limit is reached, so
    "stop after 20 errors a minute" stops the 21st call.
    """
    return charge.enforced and denies(state.used + state.reserved, charge.amount, charge.limit.max)


def denies(held: int, amount: int, maximum: int) -> bool:
    """The deny rule: may `amount` more be held on a counter holding `held` of `maximum`?

    meter_check (migrations/0002_quota.sql) runs the same rule in SQL, inside the transaction
    that reserves; tests/integration/test_rule_parity.py drives both over generated cases."""
    return held + amount > maximum or (amount == 0 and held >= maximum)


def denial_retry_after(charge: Charge, reading: CounterReading, at: dt.datetime) -> dt.timedelta | None:
    """Time until the denying limit has room for this charge (None: the amount can never fit)."""
    return retry_after(
        charge.limit.window,
        at,
        used_current=reading.used,
        used_previous=reading.prev_used + reading.prev_reserved,
        reserved=reading.reserved,
        amount=max(charge.amount, 1),
        max=charge.limit.max,
    )


# ---- what crosses the quota port (service.ports.QuotaPort) ----------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckItem:
    """One CheckQuota request of a group-committed batch."""

    tenant_id: str
    api_key_id: str
    dims: Dimensions
    reserve: bool
    reservation_id: str
    client_reservation_id: bool  # chosen by the caller: a retry may repeat it
    ttl: dt.timedelta
    estimate: Estimate
    cost_nanos: int
    charges: list[Charge]


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    allowed: bool
    existing: bool  # the reservation id was already taken: nothing changed
    at: dt.datetime
    expires_at: dt.datetime | None
    readings: list[CounterReading]  # one per charge, after the request


@dataclasses.dataclass(frozen=True)
class ReservedCounter:
    limit_id: str
    partition: str
    reading: CounterReading


@dataclasses.dataclass(frozen=True)
class Extended:
    found: bool
    allowed: bool
    expires_at: dt.datetime | None
    cost_nanos: int
    counters: list[ReservedCounter]


class ReservationState(enum.StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"
