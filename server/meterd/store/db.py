"""The connection pool, and the translation of connection trouble into domain errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import orjson
import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from meterd.domain.errors import InvalidArgument, NotFound, RejectedContent, RolledBack, StoreFailure, Unavailable

log = logging.getLogger(__name__)

# Every pooled connection returns rows as dicts (connection_kwargs' row_factory): this is their type.
Conn: TypeAlias = psycopg.AsyncConnection[DictRow]

# PostgreSQL aborted the transaction to resolve a conflict (class 40): safe to run it again.
ROLLED_BACK = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.TransactionRollback,
)


# Class 22 (data exception: overflow, bad encoding...) and 54 (program limit: an index row too big)
# come from a request's values; class 23 from a constraint its values break.
_CONTENT_CLASSES = {"22": "a value is out of the database's range", "23": "a value breaks a database constraint",
                    "54": "a value is too large for the database"}  # fmt: skip


def _content_error(exc: psycopg.Error) -> RejectedContent | None:
    """RejectedContent when PostgreSQL says a request's values are at fault (with a bounded
    message), else None."""
    sqlstate = exc.sqlstate or ""
    if not sqlstate and isinstance(exc, psycopg.DataError):
        sqlstate = "22000"  # refused by psycopg before sending, e.g. a NUL in a text parameter
    why = _CONTENT_CLASSES.get(sqlstate[:2])
    if why is None:
        return None
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
    return RejectedContent(
        InvalidArgument([("request", f"{why} ({sqlstate}: {detail}); counts and costs must stay far below 2^63")])
    )


def unavailable(exc: Exception) -> Unavailable:
    """The retryable error for a lost or unreachable database, with psycopg's first line as the reason."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Unavailable(f"database unavailable ({reason}); retry with backoff")


def store_error(exc: psycopg.Error) -> Exception:
    """What a psycopg error becomes at the store's edge, so that no psycopg class reaches the services."""
    if isinstance(exc, ROLLED_BACK):
        # The whole transaction rolled back and nothing was applied: callers run it again.
        return RolledBack(exc.sqlstate or "40000")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):  # InterfaceError: "connection is closed"
        return unavailable(exc)
    return _content_error(exc) or StoreFailure(f"{type(exc).__name__}: {exc}")


def connection_kwargs(timeout: float, statement_timeout: float, tcp_user_timeout: float) -> dict[str, Any]:
    """Options of every connection. Keepalives and tcp_user_timeout end a connection whose peer
    stopped answering (a hung socket) instead of letting it wait for the kernel's ~15 minutes; on a
    Unix socket libpq ignores them."""
    idle = max(1, int(tcp_user_timeout / 2))
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "options": f"-c statement_timeout={int(statement_timeout * 1000)} -c timezone=UTC",
        "connect_timeout": max(1, int(timeout)),
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": max(1, idle // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": int(tcp_user_timeout * 1000),
    }


class _Pool(AsyncConnectionPool[Conn]):
    """psycopg_pool leaves a waiter that timed out (or was cancelled) in its queue until a connection
    is returned, so during an outage dead waiters fill max_waiting ("too many requests waiting"):
    take them out as soon as they give up."""

    async def getconn(self, timeout: float | None = None) -> Conn:  # noqa: ASYNC109 - psycopg_pool's signature
        try:
            return await super().getconn(timeout)
        except PoolClosed:
            raise  # not opened yet (an RPC before SERVING) or closed: no waiters to clean (no lock yet either)
        except BaseException:
            # Before open() there is no lock (psycopg_pool makes it there) and nobody is waiting: a
            # request that early gets PoolClosed, which connection() turns into Unavailable.
            lock = getattr(self, "_lock", None)
            if lock is not None:
                async with lock:
                    if any(w.error is not None for w in self._waiting):
                        alive = [w for w in self._waiting if w.error is None]
                        self._waiting.clear()
                        self._waiting.extend(alive)
            raise


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
        reconnect_timeout: float = 2.0,
        tcp_user_timeout: float = 10.0,
        configure: Callable[[Conn], Awaitable[None]] | None = None,
    ) -> None:
        """configure: run on each new connection (tracing instruments it there)."""
        self.conninfo = conninfo
        self.kwargs = connection_kwargs(timeout, statement_timeout, tcp_user_timeout)
        self.pool = _Pool(
            conninfo,
            connection_class=psycopg.AsyncConnection[DictRow],
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            # The pool's backoff between reconnect attempts doubles without a cap for as long as an
            # attempt lasts; a short attempt keeps the gap small. When an attempt gives up, the next
            # waiting RPC (or the health watcher's check()) starts a fresh one at once, so after an
            # outage of any length the pool is back within about this many seconds.
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=_reconnect_failed,
            open=False,
            kwargs=self.kwargs,
            name="meter",
            configure=configure,
        )

    async def open(self, wait_timeout: float = 30.0) -> None:
        try:
            await self.pool.open(wait=True, timeout=wait_timeout)
        except PoolTimeout as exc:
            raise unavailable(exc) from None

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's figures (pool_size, pool_available, requests_waiting...), for the metrics."""
        return self.pool.get_stats()

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; connection failures become Unavailable (retryable) errors."""
        try:
            async with self.pool.connection() as conn:
                try:
                    yield conn
                except asyncio.CancelledError:
                    # Abandoned mid-statement (a batch past its timeout, a caller gone): its state is
                    # unknown, so it is closed rather than handed to the next caller.
                    await conn.close()
                    raise
        except PoolClosed:
            raise Unavailable(
                "the server's database is not ready yet (starting or stopping); retry with backoff"
            ) from None
        except PoolTimeout:
            raise Unavailable(
                f"no database connection within {self.pool.timeout:.1f}s (database down or pool exhausted); retry with backoff"
            ) from None
        except TooManyRequests:
            raise Unavailable("too many requests waiting for a database connection; retry with backoff") from None
        except psycopg.Error as exc:
            error = store_error(exc)
            if isinstance(error, Unavailable):
                log.warning("database operation failed: %s", exc)
                raise error from None
            raise error from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.execute("SELECT 1")
            return True
        except Unavailable:
            return False


async def one(cur: psycopg.AsyncCursor[DictRow]) -> DictRow:
    """The row of a statement that always returns exactly one (an aggregate, a function call, an
    upsert's RETURNING); none is a bug of ours."""
    row = await cur.fetchone()
    if row is None:
        raise StoreFailure("a statement that returns one row returned none")
    return row


@contextlib.asynccontextmanager
async def dedicated(conninfo: str, **kwargs: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of its own, not pooled (LISTEN, a session's advisory lock), in autocommit and
    closed at the end; its errors are mapped as a pooled connection's are (store_error)."""
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, **kwargs) as conn:
            yield conn
    except psycopg.Error as exc:
        raise store_error(exc) from exc


async def _reconnect_failed(pool: AsyncConnectionPool[Any]) -> None:
    log.warning("pool %s: a reconnect attempt gave up; the next request or health check starts another", pool.name)


class HealthProbe:
    """Database reachability on a connection of its own, so a saturated pool (every connection busy,
    a queue of waiters) never reads as "database down" and cannot drain every replica at once."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], timeout: float) -> None:
        self.conninfo, self.kwargs, self.timeout = conninfo, kwargs, timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(self.conninfo, **self.kwargs)
                await self._conn.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.debug("health probe failed: %s", exc)
            await self.close()
            return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _encoded(payload: bytes) -> bytes:
    return payload


def json_rows(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Jsonb:
    """Many rows as one jsonb parameter, for `jsonb_to_recordset(%s) AS u(column type, ...)`.

    Batches are sent this way rather than as one array per column: psycopg adapts array elements
    one by one in Python, which cost about 100 µs per recorded call. orjson writes datetimes as
    RFC 3339 (what timestamptz reads) and runs about 20x faster than json.dumps.

    Encoded here rather than when psycopg sends it, so a value JSON can't carry (an integer past
    64 bits) is the request's content error, which a group-committed batch bisects to its culprit."""
    try:
        payload = orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows])
    except orjson.JSONEncodeError as exc:
        raise RejectedContent(
            InvalidArgument(
                [("request", f"a value can't be stored ({str(exc)[:80]}); counts and costs must stay far below 2^63")]
            )
        ) from None
    return Jsonb(payload, dumps=_encoded)


async def rollback(conn: Conn) -> None:
    """End the failed transaction of a connection about to go back to the pool (a closed or broken
    one is discarded by the pool instead); the error that failed it is the caller's to raise."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        await conn.rollback()
    except psycopg.Error as exc:
        log.warning("rollback of a failed transaction failed: %s", exc)


async def lock_existing_tenant(conn: psycopg.AsyncConnection[Any], lock_sql: str, tenant_id: str) -> None:
    """Take the transaction's advisory lock `lock_sql` (an expression of the tenant id, e.g. a
    hashtextextended of a namespace and %s) and fail with NotFound unless the tenant exists: the
    per-tenant admin writes that count their rows under a lock all start this way."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({lock_sql})", (tenant_id,))
    cur = await conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"tenant {tenant_id[:64]!r} does not exist (create a key for it first)")
