"""An RPC that reaches the server before its pool is open (listening, not yet SERVING) gets
UNAVAILABLE, not INTERNAL: psycopg_pool's PoolClosed used to be masked by an AttributeError of the
waiter clean-up (the pool's lock exists only once it is open)."""

from __future__ import annotations

import pytest

from meterd.domain.errors import Unavailable
from meterd.store.db import Database


async def test_a_connection_asked_before_the_pool_opens_is_unavailable():
    db = Database("postgresql://nobody@127.0.0.1:9/none")
    with pytest.raises(Unavailable, match="not ready yet"):
        async with db.connection():
            pass
