"""Declared label dimensions: declare, list, delete, and back-fill their rollups from raw calls."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.dimensions import (
    ERROR_CODE_KEY,
    MAX_DIMENSIONS,
    MAX_ERROR_CODES_PER_DAY,
    LabelDimension,
    backfill_days,
    validate_declaration,
)
from meterd.domain.errors import InvalidArgument, NotFound, ResourceExhausted
from meterd.service.ports import DimensionPort


@dataclasses.dataclass(frozen=True)
class Backfilled:
    days: list[dt.datetime]  # the UTC days recomputed, oldest first


class DimensionAdmin:
    def __init__(self, store: DimensionPort) -> None:
        self.store = store

    async def set(self, tenant_id: str, label_key: str, max_values_per_day: int) -> tuple[LabelDimension, bool]:
        key, bound = validate_declaration(label_key, max_values_per_day)
        declared = await self.store.declared(tenant_id)
        if key not in declared and len(declared) >= MAX_DIMENSIONS:
            raise ResourceExhausted(
                f"at most {MAX_DIMENSIONS} label dimensions per tenant; delete one (DeleteLabelDimension) first"
            )
        return await self.store.set(tenant_id, key, bound)

    async def list(self, tenant_id: str) -> list[LabelDimension]:
        return sorted((await self.store.declared(tenant_id)).values(), key=lambda d: d.label_key)

    async def delete(self, tenant_id: str, label_key: str) -> None:
        await self.store.delete(tenant_id, label_key)

    async def backfill(
        self, tenant_id: str, label_key: str, error_codes: bool, start: dt.datetime | None, end: dt.datetime | None
    ) -> Backfilled:
        """One transaction per day, so recording waits for at most one day's recompute at a time."""
        violations = []
        if start is None:
            violations.append(("start", "required: the first day to recompute"))
        if end is None:
            violations.append(("end", "required: the end of the range (exclusive)"))
        if error_codes == bool(label_key):
            violations.append(("label_key", "give either a declared label key or error_codes, not both"))
        if violations:
            raise InvalidArgument(violations)
        assert start is not None and end is not None
        if error_codes:
            key, bound = ERROR_CODE_KEY, MAX_ERROR_CODES_PER_DAY
        else:
            declared = await self.store.declared(tenant_id)
            if label_key not in declared:
                raise NotFound(f"label dimension {label_key[:64]!r} is not declared (SetLabelDimension first)")
            key, bound = label_key, declared[label_key].max_values_per_day
        days = backfill_days(start, end, await self.store.first_retained_call(tenant_id))
        for day in days:
            await self.store.backfill_day(tenant_id, key, day, bound)
        return Backfilled(days)
