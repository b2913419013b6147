"""An RPC that arrives between bind and the pool's opening (a worker starting, health NOT_SERVING)."""

from __future__ import annotations

import pytest

from meterd.domain.errors import Unavailable
from meterd.store.db import Database


async def test_a_connection_asked_before_the_pool_opens_is_unavailable_not_internal():
    db = Database("postgresql://nobody@/nowhere?host=/nonexistent")
    with pytest.raises(Unavailable, match="retry"):
        async with db.connection():
            pytest.fail("no connection can be handed out before open()")
