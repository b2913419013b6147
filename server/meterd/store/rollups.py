"""The three usage rollup tables and the SQL that adds to them (records) or corrects their cost (reprice).

usage_hourly holds one row per (tenant, hour, subject, provider, model, operation); usage_model_hourly
and usage_model_daily hold the same figures summed over subjects, per hour and per UTC day, and
usage_subject_daily per subject and UTC day. Every writer derives each table's deltas by folding the
per-subject hours (`fold`) and writes the tables in this order, each in key order, so concurrent
writers never deadlock and they always agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable

from meterd.domain.records import HourlyKey, RollupSums

ModelKey = tuple[str, dt.datetime, str, str, str]  # tenant, hour or day, provider, model, operation

# Summed figures in column order; the histogram (latency_buckets) comes after them.
FIGURES = (
    ("calls", "bigint"),
    ("errors", "bigint"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cached_read_tokens", "bigint"),
    ("cache_write_tokens", "bigint"),
    ("reasoning_tokens", "bigint"),
    ("requests", "bigint"),
    ("units", "bigint"),
    ("cost_nanos", "numeric"),
    ("unpriced_calls", "bigint"),
    ("latency_count", "bigint"),
    ("latency_sum_us", "numeric"),
    ("retry_count", "bigint"),  # migrations/0012_label_rollups.sql
    # Cost parts (migrations/0009_genai_prices.sql), in domain.pricing.PARTS order.
    ("cost_input_nanos", "numeric"),
    ("cost_output_nanos", "numeric"),
    ("cost_cached_read_nanos", "numeric"),
    ("cost_cache_write_nanos", "numeric"),
    ("cost_requests_nanos", "numeric"),
    ("cost_units_nanos", "numeric"),
    ("cost_other_nanos", "numeric"),
    ("cache_savings_nanos", "numeric"),
)
PART_COLUMNS = tuple(c for c, _ in FIGURES[-8:])
# domain.records.RollupSums names its figures like these columns, in this order (tests/unit/test_records.py).


def _to_model_hour(key: HourlyKey) -> ModelKey:
    tenant, hour, _subject, provider, model, operation = key
    return tenant, hour, provider, model, operation


def _to_model_day(key: HourlyKey) -> ModelKey:
    tenant, hour, _subject, provider, model, operation = key
    return tenant, hour.replace(hour=0), provider, model, operation  # hours are UTC


def _to_subject_day(key: HourlyKey) -> HourlyKey:
    tenant, hour, subject, provider, model, operation = key
    return tenant, hour.replace(hour=0), subject, provider, model, operation


@dataclasses.dataclass(frozen=True)
class RollupTable:
    name: str
    key_columns: tuple[str, ...]
    key_types: tuple[str, ...]
    # The key of this table's row for a row of the first table of TABLES (None: the first table).
    from_hourly: Callable[[tuple], tuple] | None
    # usage_hourly keeps its histogram sparse (latency_hist jsonb {"bucket": count}); the others dense
    # (latency_buckets bigint[128]). See migrations/0004_model_rollups.sql.
    sparse: bool

    @property
    def histogram_column(self) -> str:
        return "latency_hist" if self.sparse else "latency_buckets"

    @functools.cached_property
    def json_columns(self) -> tuple[str, ...]:
        """The keys of the rows upsert_sql takes (see db.json_rows): key columns, figures, "hs"."""
        return (*self.key_columns, *(c for c, _ in FIGURES), "hs")

    @functools.cached_property  # built once: the record path uses it on every batch
    def upsert_sql(self) -> str:
        """Adds pre-summed rows (keys, figures, then a sparse histogram {"bucket": count})."""
        names = [*self.key_columns, *(c for c, _ in FIGURES)]
        types = [*self.key_types, *(t for _, t in FIGURES)]
        record = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
        keys = ", ".join(self.key_columns)
        updates = ",\n    ".join(f"{c} = r.{c} + excluded.{c}" for c, _ in FIGURES)
        hist = self.histogram_column
        value, merge = (
            ("hs", f"meter_sparse_hist_add_v2(r.{hist}, excluded.{hist})")
            if self.sparse
            else ("meter_hist_add_sparse(NULL, hs)", f"meter_hist_add(r.{hist}, excluded.{hist})")
        )
        return f"""INSERT INTO {self.name} AS r ({", ".join(names)}, {hist})
SELECT {", ".join(names)}, {value}
  FROM jsonb_to_recordset(%s) AS u({record}, hs jsonb)
 ORDER BY {keys}
ON CONFLICT ({keys}) DO UPDATE SET
    {updates},
    {hist} = {merge}"""

    @functools.cached_property
    def reprice_sql(self) -> tuple[str, str]:
        """(lock the rows in key order, add cost, unpriced-call and cost-part deltas to them)."""
        keys = ", ".join(self.key_columns)
        columns = ", ".join(f"r.{c}" for c in self.key_columns)
        arrays = ", ".join(f"%s::{t}[]" for t in self.key_types)
        lock = f"""SELECT 1 FROM {self.name} r JOIN unnest({arrays}) AS d({keys}) USING ({keys})
 ORDER BY {columns} FOR UPDATE OF r"""
        deltas = ("cost_nanos", "unpriced_calls", *PART_COLUMNS)
        update = f"""UPDATE {self.name} r SET {", ".join(f"{c} = r.{c} + d.{c}" for c in deltas)}
  FROM unnest({arrays}, {", ".join("%s::bigint[]" for _ in deltas)}) AS d({keys}, {", ".join(deltas)})
 WHERE ({columns}) = ({", ".join(f"d.{c}" for c in self.key_columns)})"""
        return lock, update


_MODEL_KEY_TYPES = ("text", "timestamptz", "text", "text", "text")

TABLES = (
    RollupTable(
        "usage_hourly",
        ("tenant_id", "hour", "subject", "provider", "model", "operation"),
        ("text", "timestamptz", "text", "text", "text", "text"),
        None,
        sparse=True,
    ),
    RollupTable(
        "usage_model_hourly",
        ("tenant_id", "hour", "provider", "model", "operation"),
        _MODEL_KEY_TYPES,
        _to_model_hour,
        sparse=False,
    ),
    RollupTable(
        "usage_model_daily",
        ("tenant_id", "day", "provider", "model", "operation"),
        _MODEL_KEY_TYPES,
        _to_model_day,
        sparse=False,
    ),
    # migrations/0012_label_rollups.sql: top users over weeks read days, not hours.
    RollupTable(
        "usage_subject_daily",
        ("tenant_id", "day", "subject", "provider", "model", "operation"),
        ("text", "timestamptz", "text", "text", "text", "text"),
        _to_subject_day,
        sparse=True,
    ),
)


def fold(rows: dict[tuple, RollupSums], to_key: Callable[[tuple], tuple]) -> dict[tuple, RollupSums]:
    """Sums summed into the coarser keys. A coarse key with one fine row shares that row's sums
    (the rows are read, never changed, once folded): a copy is made only when a second row is added,
    which the per-subject day of a batch's calls within one hour never needs."""
    out: dict[tuple, RollupSums] = {}
    shared: set[tuple] = set()
    for key, sums in rows.items():
        coarse = to_key(key)
        acc = out.get(coarse)
        if acc is None:
            out[coarse] = sums
            shared.add(coarse)
            continue
        if coarse in shared:
            acc = out[coarse] = acc.copy()
            shared.discard(coarse)
        acc.add(sums)
    return out


def upsert_rows(rows: dict[tuple, RollupSums]) -> list[tuple]:
    """The rows of a RollupTable.upsert_sql (see json_columns), in key order."""
    return [(*key, *rows[key].figures(), rows[key].latency_hist) for key in sorted(rows)]


def fold_costs(deltas: dict[tuple, tuple[int, ...]], to_key: Callable[[tuple], tuple]) -> dict[tuple, tuple]:
    """(cost, unpriced, *cost parts) deltas summed into the coarser keys."""
    out: dict[tuple, tuple[int, ...]] = {}
    for key, values in deltas.items():
        coarse = to_key(key)
        acc = out.get(coarse)
        out[coarse] = values if acc is None else tuple(a + b for a, b in zip(acc, values, strict=True))
    return out
