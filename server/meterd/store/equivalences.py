"""A tenant's model equivalence list (migrations/0015_model_equivalences.sql)."""

from __future__ import annotations

from meterd.domain.equivalences import ModelEquivalence, model_text, parse_model
from meterd.domain.errors import NotFound, ResourceExhausted
from meterd.store.db import Database, lock_existing_tenant, one

_LOCK = "hashtextextended('meter_equivalences/' || %s, 0)"


def _group(row: dict) -> ModelEquivalence:
    members = tuple(m for text in row["models"] if (m := parse_model(text)) is not None)
    return ModelEquivalence(row["name"], members, row["created_at"], row["updated_at"])


class EquivalenceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, tenant_id: str) -> list[ModelEquivalence]:
        """By name."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT name, models, created_at, updated_at FROM model_equivalences WHERE tenant_id = %s ORDER BY name",
                (tenant_id,),
            )
            return [_group(r) for r in await cur.fetchall()]

    async def set(
        self, tenant_id: str, name: str, models: tuple[tuple[str, str], ...], max_groups: int
    ) -> tuple[ModelEquivalence, bool]:
        """Create the group or replace its members; True when new. A new group past max_groups is
        refused (counted under the tenant's lock, so concurrent creations cannot pass it together)."""
        async with self.db.transaction() as conn:
            await lock_existing_tenant(conn, _LOCK, tenant_id)
            cur = await conn.execute(
                """SELECT count(*) AS n, count(*) FILTER (WHERE name = %s) AS mine
                     FROM model_equivalences WHERE tenant_id = %s""",
                (name, tenant_id),
            )
            counts = await one(cur)
            if not counts["mine"] and counts["n"] >= max_groups:
                # RESOURCE_EXHAUSTED like the label dimensions' count: the request is valid, the tenant is full.
                raise ResourceExhausted(f"at most {max_groups} model equivalence groups per tenant; delete one "
                                        "(DeleteModelEquivalence) or add the models to an existing group")  # fmt: skip
            cur = await conn.execute(
                """INSERT INTO model_equivalences AS e (tenant_id, name, models) VALUES (%s, %s, %s)
                   ON CONFLICT (tenant_id, name) DO UPDATE SET models = excluded.models, updated_at = now()
                   RETURNING name, models, created_at, updated_at, (xmax = 0) AS created""",
                (tenant_id, name, [model_text(p, m) for p, m in models]),
            )
            row = await one(cur)
        return _group(row), row["created"]

    async def delete(self, tenant_id: str, name: str) -> None:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM model_equivalences WHERE tenant_id = %s AND name = %s RETURNING 1", (tenant_id, name)
            )
            if await cur.fetchone() is None:
                raise NotFound(f"model equivalence {name[:64]!r} does not exist (see ListModelEquivalences)")
