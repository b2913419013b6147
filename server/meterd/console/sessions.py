"""Console sessions: a server-side table keyed by a random id.

The browser holds only the session id, in an HttpOnly, SameSite=Strict cookie (Secure unless the
console is told it runs on plain HTTP): the API key never goes back to the browser, so neither a
script on the page nor a leaked cookie file reveals it, and signing out (or a restart) ends the
session for good. Each session has its own CSRF token for the forms that change state."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from meter import AsyncMeterClient, MeterAuthError, MeterError
from meterd.console.cache import CachingClient, UsageCache

COOKIE = "meter_console"
IDLE_SECONDS = 8 * 3600
ABSOLUTE_SECONDS = 24 * 3600
MAX_SESSIONS = 10_000


class SignInError(Exception):
    pass


@dataclass
class Session:
    id: str
    client: CachingClient
    is_admin: bool
    key_id: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), (token or "").encode())


def key_id(api_key: str) -> str:
    """The public part of "mk_<id>_<secret>", to show who is signed in."""
    parts = api_key.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "mk" else "?"


class Sessions:
    def __init__(
        self,
        target: str,
        channel: grpc.aio.Channel,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_ttl: float = 30.0,
    ):
        self.target = target
        self.channel = channel
        self.clock = clock
        self.usage_cache = UsageCache(ttl=cache_ttl)
        self._table: dict[str, Session] = {}

    async def sign_in(self, api_key: str, probe) -> Session:
        """Checks the key with a read (it needs the read role) and an admin read (to know whether to
        offer the admin pages); `probe(client)` is the read."""
        api_key = api_key.strip()
        if not api_key.startswith("mk_") or len(api_key) > 200:
            raise SignInError("That is not a Meter API key (they start with mk_).")
        client = AsyncMeterClient(self.target, api_key=api_key, channel=self.channel)
        try:
            await probe(client)
        except MeterAuthError as err:
            if err.code == grpc.StatusCode.PERMISSION_DENIED:
                raise SignInError("This key lacks the read role the console needs.") from None
            raise SignInError("Meter does not know this key (unknown, revoked or mistyped).") from None
        except MeterError as err:
            raise SignInError(f"Meter could not be asked: {str(err)[:200]}") from None
        try:
            await client.list_alert_rules()
            is_admin = True
        except MeterAuthError:
            is_admin = False
        self._expire()
        if len(self._table) >= MAX_SESSIONS:
            oldest = min(self._table.values(), key=lambda s: s.seen)
            self._table.pop(oldest.id, None)
        now = self.clock()
        reader = CachingClient(client, self.usage_cache, api_key)
        session = Session(secrets.token_urlsafe(32), reader, is_admin, key_id(api_key), now, now)
        self._table[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._table.get(session_id or "")
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > IDLE_SECONDS or now - session.created > ABSOLUTE_SECONDS:
            self._table.pop(session.id, None)
            return None
        session.seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        self._table.pop(session_id or "", None)

    def _expire(self) -> None:
        now = self.clock()
        for session in list(self._table.values()):
            if now - session.seen > IDLE_SECONDS or now - session.created > ABSOLUTE_SECONDS:
                self._table.pop(session.id, None)
