"""What GetUsage and ListCalls read, the pure parts: the summed figures of a group (Aggregate) and
the figures derived from them (rates, percentiles), GetUsage's rows and everything one GetUsage
read, and the rows ListCalls returns. What is asked, and which table answers it: domain/usage.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from meterd.domain import histogram


@dataclasses.dataclass(frozen=True)
class UsageKey:
    """The group a row belongs to; only the grouped dimensions are set."""

    subject: str | None = None
    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    label_value: str | None = None
    bucket_start: dt.datetime | None = None
    error_code: str | None = None


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """Summed usage of a group (or of everything), with its summed latency histogram."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    units: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0
    latency_count: int = 0
    latency_sum_us: int = 0
    retry_count: int = 0  # summed; calls recorded before migration 0012 add 0 in rollups
    # Cost parts (nano-USD; see domain.pricing.CostBreakdown): the first seven sum to cost_nanos for
    # calls recorded since breakdowns exist; cache_savings_nanos is not part of the cost.
    cost_input_nanos: int = 0
    cost_output_nanos: int = 0
    cost_cached_read_nanos: int = 0
    cost_cache_write_nanos: int = 0
    cost_requests_nanos: int = 0
    cost_units_nanos: int = 0
    cost_other_nanos: int = 0
    cache_savings_nanos: int = 0
    latency_buckets: Sequence[int] = ()  # histogram.BUCKETS counts, or empty when there are none

    @property
    def successes(self) -> int:
        return self.calls - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def total_tokens(self) -> int:
        """Every token kind (reasoning tokens are already in output_tokens)."""
        return self.input_tokens + self.output_tokens + self.cached_read_tokens + self.cache_write_tokens

    @property
    def cost_nanos_per_1k_tokens(self) -> float:
        return self.cost_nanos * 1000 / self.total_tokens if self.total_tokens else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Cached-read share of all input tokens (uncached + cached-read + cache-write)."""
        all_input = self.input_tokens + self.cached_read_tokens + self.cache_write_tokens
        return self.cached_read_tokens / all_input if all_input else 0.0

    @property
    def latency_avg_us(self) -> int | None:
        return self.latency_sum_us // self.latency_count if self.latency_count else None

    def latency_percentile_us(self, q: float) -> int | None:
        """From the histogram: within histogram.MAX_RELATIVE_ERROR of the exact value."""
        return histogram.percentile(self.latency_buckets, q) if self.latency_buckets else None

    @property
    def output_tokens_per_second(self) -> float:
        """Output tokens over the summed latency (calls recorded without a latency add tokens only)."""
        return self.output_tokens * 1_000_000 / self.latency_sum_us if self.latency_sum_us else 0.0


def combine(parts: Sequence[Aggregate]) -> Aggregate:
    """The aggregate of disjoint groups: sums add, histograms add bucket by bucket."""
    sums = {
        f.name: sum(getattr(p, f.name) for p in parts)
        for f in dataclasses.fields(Aggregate)
        if f.name != "latency_buckets"
    }
    buckets = histogram.empty()
    for p in parts:
        histogram.merge(buckets, p.latency_buckets)
    return Aggregate(**sums, latency_buckets=tuple(buckets) if any(buckets) else ())


@dataclasses.dataclass(frozen=True)
class UsageRow:
    key: UsageKey
    stats: Aggregate


@dataclasses.dataclass
class UsageData:
    """What one GetUsage read: the rows, the totals and, when asked, the projection's sums."""

    rows: list[UsageRow] = dataclasses.field(default_factory=list)
    totals: Aggregate = dataclasses.field(default_factory=lambda: Aggregate())
    expired_reservations: int = 0
    month_to_date_cost: int = 0
    basis_cost: int = 0
    first_seen: dt.datetime | None = None  # first matching usage before the basis end


# --- ListCalls ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CallRow:
    call_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    api_key_id: str
    reservation_id: str | None
    subject: str
    provider: str
    model: str
    operation: str
    labels: dict[str, str]
    metadata: dict[str, str]
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    units: int
    latency_us: int | None
    ttft_us: int | None
    retry_count: int
    success: bool
    error_code: str
    error_message: str
    cost_nanos: int
    cost_source: str
    price_id: str
    cost_parts: Sequence[int] | None = None  # domain.pricing.PARTS order; None: recorded before breakdowns
    service_tier: str = ""
