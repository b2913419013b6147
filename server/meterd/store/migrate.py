"""Applies migrations/NNNN_name.sql in order, once each, under an advisory lock.

Applied migrations are recorded with a checksum; editing an applied file is an error, because the
databases that already ran it would silently differ from new ones (forward-only: add a new file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from importlib import resources
from pathlib import Path

import psycopg

from meterd.store.db import unavailable

log = logging.getLogger(__name__)

# Arbitrary but fixed: every replica takes the same lock, so only one migrates at a time.
MIGRATION_LOCK_KEY = 0x6D65746572  # "meter"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


# Texts of a migration that main once shipped and then restored, by version: checksum -> the later
# migration that restates the shipped text's whole effect. A database that ran such a text is as
# current as one that ran the restored file, once the named migration has run on it too.
SHIPPED_EARLIER: dict[int, dict[str, str]] = {
    # 0018 edited in place to call meter_check_v2 (landed in one stop), restored; 0020 makes that change.
    18: {"5ab5990682675c5e5d547792e44614a15938a7e275c88e506b7d764863bff54c": "0020_check_json_v2.sql"},
}


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """METER_MIGRATIONS_DIR, else the repo's migrations/ (source checkout), else the copy in the wheel."""
    if os.environ.get("METER_MIGRATIONS_DIR"):
        return Path(os.environ["METER_MIGRATIONS_DIR"])
    checkout = Path(__file__).resolve().parents[3] / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("meterd") / "migrations"))


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations with version {version:04d}: {found[version].name}, {path.name}")
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(conninfo: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date). A database that
    cannot be reached raises Unavailable (retryable); a migration or schema that fails, MigrationError."""
    pending = discover(directory)
    try:
        return await _migrate(conninfo, pending)
    except psycopg.OperationalError as exc:
        raise unavailable(exc) from exc
    except psycopg.Error as exc:
        raise MigrationError(f"cannot migrate: {type(exc).__name__}: {exc}") from exc


async def _migrate(conninfo: str, pending: list[Migration]) -> list[str]:
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cur = await conn.execute("SELECT version, name, checksum FROM schema_migrations")
            applied = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
            for migration in pending:
                if migration.version in applied:
                    name, checksum = applied[migration.version]
                    if checksum != migration.checksum and checksum not in SHIPPED_EARLIER.get(migration.version, {}):
                        raise MigrationError(
                            f"{migration.name} was changed after it was applied (as {name}); "
                            "never edit an applied migration, add a new one"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.OperationalError:
                    raise  # connection trouble, not the migration's fault: Unavailable, retried
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.name} failed: {type(exc).__name__}: {exc}") from exc
                log.info("applied migration %s", migration.name)
                applied_now.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
