"""The store's edge: what a service sees when the database is not there yet is a domain error."""

from __future__ import annotations

import datetime as dt

import pytest

from meterd.domain.errors import RejectedContent, Unavailable
from meterd.store.db import Database, json_rows


async def test_a_request_before_the_pool_opens_is_unavailable_not_internal(database_url):
    # A server takes RPCs while it still migrates; until its pool is open they must be retryable.
    db = Database(database_url, min_size=1, max_size=1)
    with pytest.raises(Unavailable, match="not ready yet"):
        async with db.connection() as conn:
            await conn.execute("SELECT 1")


async def test_json_rows_carry_every_value_type_the_batches_send(database_url):
    # The batches' one jsonb parameter must read back exactly: timestamps at any offset (as
    # timestamptz), NULLs, nested objects, arrays from tuples, and integers at the bigint edges.
    db = Database(database_url, min_size=1, max_size=1)
    await db.open()
    try:
        at = dt.datetime(2026, 12, 1, 18, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        rows = [("a\u00e9\u4e2d", at, None, {"team": "x", "n": {"k": 1}}, (1, 2, 3), 2**63 - 1, -(2**63), True)]
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM jsonb_to_recordset(%s) AS u(s text, w timestamptz, z text, j jsonb, a bigint[],"
                " hi bigint, lo bigint, b boolean)",
                (json_rows(("s", "w", "z", "j", "a", "hi", "lo", "b"), rows),),
            )
            got = await cur.fetchall()
        assert got == [{"s": "a\u00e9\u4e2d", "w": at, "z": None, "j": {"team": "x", "n": {"k": 1}}, "a": [1, 2, 3],
                        "hi": 2**63 - 1, "lo": -(2**63), "b": True}]  # fmt: skip
    finally:
        await db.close()


def test_a_value_json_cannot_carry_is_the_requests_content_error_not_a_crash():
    # Bisected to its culprit by the batcher, like PostgreSQL's own out-of-range refusals.
    with pytest.raises(RejectedContent) as caught:
        json_rows(("n",), [(2**64,)])
    assert "2^63" in str(caught.value.error)
