"""Dedicated connections the services hold open: LISTEN for NOTIFY wake-ups, and a session whose
advisory lock elects a leader. Neither is pooled: a LISTEN or a session lock lives exactly as long as
its connection. Errors leave their `async with` mapped (store.db.dedicated): a lost connection is
Unavailable."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql

from meterd.store.db import dedicated


class Notifications:
    """The NOTIFY payloads of one channel, on a connection listening to it."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def __aiter__(self) -> AsyncIterator[str]:
        """Every payload, as it comes, until the connection is lost."""
        async for notify in self._conn.notifies():
            yield notify.payload

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll interval, not a deadline
        """Until one notification comes or `timeout` seconds pass, whichever is first."""
        async for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            pass


async def listen_on(conn: psycopg.AsyncConnection[Any], channel: str) -> Notifications:
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return Notifications(conn)


@contextlib.asynccontextmanager
async def listening(conninfo: str, channel: str) -> AsyncIterator[Notifications]:
    """A connection of its own listening on `channel` (notifications sent before this are not seen)."""
    async with dedicated(conninfo) as conn:
        yield await listen_on(conn, channel)


class Session:
    """One database session, for a session-level advisory lock (held until the session ends)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def try_lock(self, key: int) -> bool:
        """Take the advisory lock `key` if it is free."""
        cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        row = await cur.fetchone()
        return bool(row and row[0])

    async def check(self) -> None:
        """Raises (Unavailable) when the session, and with it every lock it held, is gone."""
        await self._conn.execute("SELECT 1")


@contextlib.asynccontextmanager
async def session(conninfo: str) -> AsyncIterator[Session]:
    async with dedicated(conninfo) as conn:
        yield Session(conn)
