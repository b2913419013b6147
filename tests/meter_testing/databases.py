"""A fresh, migrated database with an open pool, for tests that drive the stores directly."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from meter_testing.fixtures import Postgres
from meterd.store.db import Database
from meterd.store.migrate import migrate


@contextlib.asynccontextmanager
async def migrated_database(postgres: Postgres, *, max_size: int = 4) -> AsyncIterator[Database]:
    url = postgres.create_database()
    try:
        await migrate(url)
        db = Database(url, min_size=1, max_size=max_size)
        await db.open()
        try:
            yield db
        finally:
            await db.close()
    finally:
        postgres.drop_database(url)
