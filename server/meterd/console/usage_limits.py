"""`meter usage --limits`: the limits section, from GetUsageResponse.limits (include_limits): the
limits the filter selects, with their use in the current window and when they run out at the
window's average rate so far (the server's figures, as CheckQuota reports them)."""

from __future__ import annotations

from meter.v1 import common_pb2, meter_pb2
from meterd.console import fmt
from meterd.console.limits_view import METRICS, amount
from meterd.console.tables import Column, render

COLUMNS = [
    Column("limit", "limit"),
    Column("partition", "partition"),
    Column("metric", "metric"),
    Column("window", "window"),
    Column("used", "used"),
    Column("max", "max"),
    Column("remaining", "remaining"),
    Column("reset_at", "resets", "time"),
    Column("runs_out_at", "runs out", "time"),
]


def _window(w: common_pb2.Window) -> str:
    kind = common_pb2.WindowKind.Name(w.kind).removeprefix("WINDOW_KIND_").lower()
    return f"{kind} {w.duration.seconds}s" if w.duration.seconds else kind


def limits_section(response: meter_pb2.GetUsageResponse, form: str) -> str:
    """A titled table of the statuses ("runs out" — when the limit does not run out before its reset)."""
    rows = [
        {
            "limit": s.limit_id,
            "partition": s.partition or "shared",
            "metric": METRICS.get(s.metric, "?"),
            "window": _window(s.window),
            "used": amount(s.metric, s.used + s.reserved),
            "max": amount(s.metric, s.max),
            "remaining": amount(s.metric, s.remaining),
            "reset_at": fmt.when(s.reset_at),
            "runs_out_at": fmt.when(s.projected_exhausted_at) if s.HasField("projected_exhausted_at") else None,
        }
        for s in response.limits
    ]
    if not rows:
        return "\nlimits: none selected by the filter\n"
    return "\nlimits (now; used includes live reservations):\n" + render(COLUMNS, rows, form)
