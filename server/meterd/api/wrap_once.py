"""The shape every Meter interceptor shares: a method's handler never changes, so it is wrapped once,
on the method's first call, and the wrapped handler is reused (wrapping per call costs a closure and
a handler object on the hot path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc

StreamBehavior = Callable[[Any, Any], AsyncIterator[Any]]


def stream_behavior(handler: grpc.RpcMethodHandler) -> StreamBehavior:
    """A grpc.aio handler's unary_stream behaviour: an async generator, though types-grpcio types
    RpcMethodHandler for the threaded server (a function returning an Iterator)."""
    return cast(StreamBehavior, handler.unary_stream)


class WrapOnceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    def applies(self, method: str) -> bool:
        """Whether this interceptor wraps `method` (e.g. only the methods that need a key)."""
        return True

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method not in self._wrapped:
            handler = await continuation(handler_call_details)
            wrap = handler is not None and self.applies(method)
            self._wrapped[method] = self.wrap(method, handler) if wrap else handler
        return self._wrapped[method]
