"""What RepriceCalls reads of a recorded call and writes back (service/reprice.py decides, store/reprice.py does the I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.pricing import CostBreakdown, UsageAmounts

# What places a call in the label and error-code rollups: hour, provider, model, operation, error
# value ("" for a success) and its labels (sorted items); the store maps these to declared keys.
LabelCallKey = tuple[dt.datetime, str, str, str, str, tuple[tuple[str, str], ...]]


@dataclasses.dataclass(frozen=True)
class StoredCall:
    """What repricing needs of one recorded call."""

    occurred_at: dt.datetime
    call_id: str
    api_key_id: str
    reservation_id: str  # "" when none
    subject: str
    provider: str
    model: str
    operation: str
    labels: dict[str, str]
    usage: UsageAmounts
    cost_nanos: int
    cost_source: str
    price_id: str
    cost_parts: CostBreakdown | None = None  # None: recorded before breakdowns existed
    service_tier: str = ""
    success: bool = True
    error_code: str = ""

    @property
    def error_value(self) -> str:
        """Its value in the error-code rollups ("" for a success, as the record path adds it)."""
        return "" if self.success else self.error_code


@dataclasses.dataclass(frozen=True)
class NewCost:
    call: StoredCall
    cost_nanos: int
    cost_source: str
    price_id: str
    cost_parts: CostBreakdown = CostBreakdown()


@dataclasses.dataclass(frozen=True)
class SettledCharge:
    """A counter a reservation charged, which the call that settled it was charged to instead of its own windows."""

    limit_id: str
    generation: int
    partition: str
    window_start: dt.datetime
    metric: str
