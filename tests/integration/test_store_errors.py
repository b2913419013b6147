"""The store's edge: what a service sees when the database is not there yet is a domain error."""

from __future__ import annotations

import pytest

from meterd.domain.errors import Unavailable
from meterd.store.db import Database


async def test_a_request_before_the_pool_opens_is_unavailable_not_internal(database_url):
    # A server takes RPCs while it still migrates; until its pool is open they must be retryable.
    db = Database(database_url, min_size=1, max_size=1)
    with pytest.raises(Unavailable, match="not ready yet"):
        async with db.connection() as conn:
            await conn.execute("SELECT 1")
