"""Tenants and API keys."""

from __future__ import annotations

import datetime as dt

from meterd.domain.errors import NotFound
from meterd.domain.keys import ApiKey, Principal, hash_key, new_key
from meterd.store.db import Database, one

ApiKeyRow = ApiKey  # the name callers knew; the type lives in domain.keys


_COLUMNS = "tenant_id, id, name, roles, created_at, revoked_at, expires_at, last_used_at, bound_cert_subject, bound_san"


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        tenant_id: str,
        roles: list[str],
        name: str = "",
        *,
        expires_at: dt.datetime | None = None,
        bound_cert_subject: str = "",
        bound_san: str = "",
    ) -> tuple[ApiKey, str]:
        """Create the tenant if needed and a key for it; returns the row and the full key (shown once)."""
        key_id, full_key = new_key()
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO tenants (id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
            cur = await conn.execute(
                f"""INSERT INTO api_keys (tenant_id, id, name, key_hash, roles, expires_at, bound_cert_subject, bound_san)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
                (tenant_id, key_id, name, hash_key(full_key), roles, expires_at, bound_cert_subject, bound_san),
            )
            row = await one(cur)
        return ApiKey(**row), full_key

    async def authenticate(self, full_key: str) -> Principal | None:
        """The key's principal, expired or not (the caller checks expiry against its clock and says
        "expired" rather than "unknown"); None when unknown or revoked."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT tenant_id, id, roles, expires_at, bound_cert_subject, bound_san FROM api_keys
                   WHERE key_hash = %s AND revoked_at IS NULL""",
                (hash_key(full_key),),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Principal(
            row["tenant_id"],
            row["id"],
            frozenset(row["roles"]),
            expires_at=row["expires_at"],
            bound_cert_subject=row["bound_cert_subject"],
            bound_san=row["bound_san"],
        )

    async def mark_used(self, used: dict[str, dt.datetime]) -> None:
        """Key id -> when it was last used: one statement for all of them; never moves a time back."""
        if not used:
            return
        ids = sorted(used)
        async with self.db.connection() as conn:
            await conn.execute(
                """UPDATE api_keys k SET last_used_at = u.at FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, at)
                   WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)""",
                (ids, [used[i] for i in ids]),
            )

    async def list(self, tenant_id: str, include_revoked: bool = False) -> list[ApiKey]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {_COLUMNS} FROM api_keys
                   WHERE tenant_id = %s AND (%s OR revoked_at IS NULL) ORDER BY created_at, id""",
                (tenant_id, include_revoked),
            )
            return [ApiKey(**row) for row in await cur.fetchall()]

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = %s AND id = %s
                   RETURNING {_COLUMNS}""",
                (tenant_id, key_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"API key {key_id!r} does not exist in this tenant")
        return ApiKey(**row)

    async def count(self) -> int:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL")
            return (await one(cur))["n"]
