"""What an authenticated key must still satisfy on every RPC: not expired, presented over a connection
with the client certificate it is bound to (mutual TLS), and, for server streams, still valid while
the stream stays open. Also notes when each key was used.

A second interceptor, listed after MeterInterceptor so that it runs inside it: the principal is set
and any MeterError raised here becomes a status there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from meterd.api.interceptor import KeyCache, current_principal, required_role
from meterd.api.wrap_once import WrapOnceInterceptor, stream_behavior
from meterd.domain import errors
from meterd.domain.clock import utc_now
from meterd.domain.keys import Principal

log = logging.getLogger(__name__)

# Floor for stream re-checks, so a tiny key-cache TTL cannot turn them into a busy loop.
MIN_RECHECK = 0.05


def peer_identity(context) -> tuple[list[str], list[str]]:
    """(subject common names, subject alternative names) of the client certificate the connection
    presented, as the TLS handshake verified them; empty without mutual TLS."""
    auth = context.auth_context() or {}

    def values(name: str) -> list[str]:
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in auth.get(name, ())]

    return values("x509_common_name"), values("x509_subject_alternative_name")


def bearer_token(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            return value.partition(" ")[2].strip()
    return ""


async def rechecked(stream: AsyncIterator, recheck: Callable[[], Awaitable[None]], interval: float) -> AsyncIterator:
    """The stream's items, with `recheck()` awaited every `interval` seconds whether or not items flow
    (an idle alert stream yields nothing for minutes). A recheck that raises ends the stream with its
    error. The stream's steps run in a task of their own so that the wait for the next item can time out
    without cancelling it."""
    it = stream.__aiter__()
    step: asyncio.Future | None = None
    next_check = time.monotonic() + interval
    try:
        while True:
            step = asyncio.ensure_future(it.__anext__())
            while True:
                done, _ = await asyncio.wait({step}, timeout=max(0.0, next_check - time.monotonic()))
                if done:
                    break
                await recheck()
                next_check = time.monotonic() + interval
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield item
            if time.monotonic() >= next_check:
                await recheck()
                next_check = time.monotonic() + interval
    finally:
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


class KeyPolicyInterceptor(WrapOnceInterceptor):
    """recheck_interval: seconds between re-checks of a server stream's key (the key cache's TTL or
    less, so a revoked or expired key ends its streams about as fast as it stops unary calls)."""

    def __init__(
        self,
        keys: KeyCache,
        *,
        recheck_interval: float,
        touch: Callable[[str], None] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.keys = keys
        self.recheck_interval = max(MIN_RECHECK, recheck_interval)
        self.touch = touch  # key id -> None, e.g. LastUsed.touch: must be O(1), it is on the hot path
        self.clock = clock

    def applies(self, method: str) -> bool:
        return required_role(method) is not None

    def admit(self, context) -> Principal:
        principal = current_principal()
        if principal.expires_at is not None:
            principal.check_expiry(self.clock())
        if principal.bound:
            principal.check_binding(*peer_identity(context))
        if self.touch is not None:
            self.touch(principal.key_id)
        return principal

    async def _recheck(self, token: str) -> None:
        try:
            principal = await self.keys.principal(token)
        except errors.Unavailable:
            # The database is away: the key was valid and nothing says otherwise yet; check again later
            # rather than end every stream on a blip.
            log.debug("stream key re-check skipped: database unavailable")
            return
        principal.check_expiry(self.clock())

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                self.admit(context)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = stream_behavior(handler)

            async def unary_stream(request, context):
                self.admit(context)
                token = bearer_token(context.invocation_metadata())
                async for response in rechecked(
                    inner_stream(request, context), lambda: self._recheck(token), self.recheck_interval
                ):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler
