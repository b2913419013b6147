"""The model equivalence list's admin RPCs and CLI (MeterAdmin.SetModelEquivalence and friends)."""

from __future__ import annotations

from collections.abc import Sequence

from meterd.domain.equivalences import MAX_GROUPS, ModelEquivalence, validate_equivalence
from meterd.domain.errors import InvalidArgument
from meterd.service.ports import EquivalencePort


class EquivalenceAdmin:
    def __init__(self, store: EquivalencePort) -> None:
        self.store = store

    async def set(self, tenant_id: str, name: str, models: Sequence[str]) -> tuple[ModelEquivalence, bool]:
        name, members = validate_equivalence(name, models)
        return await self.store.set(tenant_id, name, members, MAX_GROUPS)

    async def list(self, tenant_id: str) -> list[ModelEquivalence]:
        return await self.store.list(tenant_id)

    async def delete(self, tenant_id: str, name: str) -> None:
        if not name:
            raise InvalidArgument([("name", "required: the group to delete (see ListModelEquivalences)")])
        await self.store.delete(tenant_id, name)
