"""Adding the servicers to the grpc.aio server as generic handlers only.

grpcio's generated `add_*Servicer_to_server` (1.6x and later) also registers every method with the
core (`add_registered_method_handlers`). The aio server then keeps one pending request future per
registered method and, for every incoming RPC, runs `asyncio.wait` over all of them: with Meter's
~30 methods that is ~60 done-callbacks added and removed per RPC, about a tenth of the server's CPU
per CheckQuota in `make bench` (cProfile: 2 waits per RPC, 16 futures each). Generic handlers are
found with one dict look-up per service, the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc


class GenericOnly:
    """What a generated add_*_to_server sees instead of the server: generic handlers pass through,
    per-method registration is dropped."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Any]) -> None:
        """Not registered: the generic handler added alongside serves the same methods."""


def add_generic(add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    add_to_server(servicer, GenericOnly(server))
