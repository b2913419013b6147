"""store/notify.py: the dedicated connections services hold (LISTEN, a session's advisory lock) on a
real PostgreSQL, and their errors mapped to domain errors (no psycopg class reaches a service)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from meterd.domain.errors import Unavailable
from meterd.store.notify import listening, session


async def test_listening_yields_each_payload_notified_after_it_started(database_url):
    async with listening(database_url, "meter_test_channel") as notifications:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
            await other.execute("SELECT pg_notify('meter_test_channel', 'tenant-a')")
            await other.execute("SELECT pg_notify('meter_test_channel', 'tenant-b')")
        payloads = []
        async with asyncio.timeout(10):
            async for payload in notifications:
                payloads.append(payload)
                if len(payloads) == 2:
                    break
    assert payloads == ["tenant-a", "tenant-b"]


async def test_wait_returns_at_a_notification_or_after_its_timeout(database_url):
    async with listening(database_url, "meter_test_wait") as notifications:
        async with asyncio.timeout(10):
            await notifications.wait(0.05)  # nothing notified: returns after the timeout
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
            await other.execute("SELECT pg_notify('meter_test_wait', '')")
        async with asyncio.timeout(10):
            await notifications.wait(60)  # returns at the notification, long before 60 s


async def test_a_session_lock_is_held_by_one_session_until_it_ends(database_url):
    key = 0x7465737401
    async with session(database_url) as first:
        assert await first.try_lock(key)
        async with session(database_url) as second:
            assert not await second.try_lock(key)
        await first.check()
    async with session(database_url) as third:
        assert await third.try_lock(key)  # the first session ended, and its lock with it


async def test_an_unreachable_database_is_unavailable_not_a_psycopg_error(tmp_path):
    unreachable = f"postgresql://nobody@/postgres?host={tmp_path}&connect_timeout=2"
    with pytest.raises(Unavailable, match="database unavailable"):
        async with listening(unreachable, "meter_limits"):
            pass
    with pytest.raises(Unavailable):
        async with session(unreachable):
            pass
