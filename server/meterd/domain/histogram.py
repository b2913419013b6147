"""Fixed log-bucket latency histograms, summed in hourly rollups so percentiles never scan raw calls.

Bucket i holds latencies in [2^(i/4), 2^((i+1)/4)) microseconds (bucket 0 also holds 0), up to
bucket 127 (2^32 µs ≈ 72 minutes; anything longer is counted there). A percentile is reported as
the geometric middle of its bucket, 2^((i+0.5)/4) µs, so it is within a factor 2^(1/8) of a true
value in that bucket: a relative error of at most 9.05%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BUCKETS = 128
PER_DOUBLING = 4
MAX_RELATIVE_ERROR = 2 ** (1 / (2 * PER_DOUBLING)) - 1  # 0.0905


def bucket(latency_us: int) -> int:
    if latency_us <= 1:
        return 0
    return min(BUCKETS - 1, int(math.log2(latency_us) * PER_DOUBLING))


def empty() -> list[int]:
    return [0] * BUCKETS


def percentile(counts: Sequence[int], q: float) -> int | None:
    """Latency in µs at quantile q (0 < q <= 1), or None when the histogram is empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))  # the rank-th smallest value
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return round(2 ** ((i + 0.5) / PER_DOUBLING))
    raise AssertionError("unreachable: ranks are within the total")


def merge(into: list[int], counts: Sequence[int]) -> None:
    for i, n in enumerate(counts):
        if n:
            into[i] += n


def from_sparse(counts: dict[str, int]) -> list[int]:
    """A histogram stored sparse, {"bucket": count} (JSON keys are strings), as the dense list."""
    out = empty()
    for b, n in counts.items():
        out[int(b)] += n
    return out
