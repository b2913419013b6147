"""The database the direct commands (migrate, keys, retention, prices, alerts rules) work on: the
configured URL or the embedded PostgreSQL, and a one-connection Database of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from meterd.config import Config


@contextlib.contextmanager
def database(config: Config) -> Iterator[str]:
    """The configured database URL, or the embedded PostgreSQL under data_dir (started if needed and
    stopped afterwards only if this process started it)."""
    if config.database_url:
        yield config.database_url
        return
    from meterd.store.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(config.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


async def with_database(url: str, action, *, statement_timeout: float = 10.0):
    """Migrate, then run `action(db)` on a one-connection Database of its own and close it: the
    commands that work on the database directly (keys, prices), with no server running."""
    from meterd.store.db import Database
    from meterd.store.migrate import migrate

    await migrate(url)
    db = Database(url, min_size=1, max_size=1, statement_timeout=statement_timeout)
    await db.open()
    try:
        return await action(db)
    finally:
        await db.close()
