"""The connection pool, and the translation of connection trouble into domain errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
from collections.abc import AsyncIterator, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from meterd.domain.errors import Unavailable

log = logging.getLogger(__name__)

# PostgreSQL aborted the transaction to resolve a conflict (class 40): safe to run it again.
ROLLED_BACK = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.TransactionRollback,
)


class Database:
    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 2.0,
        max_waiting: int = 1000,
        statement_timeout: float = 10.0,
    ) -> None:
        self.conninfo = conninfo
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            # Reconnect attempts continue in the background for as long as the database is down.
            reconnect_timeout=float("inf"),
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": f"-c statement_timeout={int(statement_timeout * 1000)} -c timezone=UTC",
                "connect_timeout": max(1, int(timeout)),
            },
            name="meter",
        )

    async def open(self, wait_timeout: float = 30.0) -> None:
        await self.pool.open(wait=True, timeout=wait_timeout)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection; connection failures become Unavailable (retryable) errors."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise Unavailable(
                f"no database connection within {self.pool.timeout:.1f}s (database down or pool exhausted); retry with backoff"
            ) from None
        except TooManyRequests:
            raise Unavailable("too many requests waiting for a database connection; retry with backoff") from None
        except ROLLED_BACK:
            raise  # the whole transaction rolled back and nothing was applied: callers run it again
        except psycopg.OperationalError as exc:
            log.warning("database operation failed: %s", exc)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Unavailable(f"database unavailable ({reason}); retry with backoff") from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.execute("SELECT 1")
            return True
        except Unavailable:
            return False


def _json_default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_dumps = functools.partial(json.dumps, default=_json_default, separators=(",", ":"))


def json_rows(columns: Sequence[str], rows: Sequence[Sequence]) -> Jsonb:
    """Many rows as one jsonb parameter, for `jsonb_to_recordset(%s) AS u(column type, ...)`.

    Batches are sent this way rather than as one array per column: psycopg adapts array elements
    one by one in Python, which cost about 100 µs per recorded call; json.dumps runs in C."""
    return Jsonb([dict(zip(columns, row, strict=True)) for row in rows], dumps=_dumps)
